"""An image classification market from scikit-learn's bundled digits (8 x 8 images of the digits 0-9, offline).

    python examples/image_workflow.py [--work-dir DIR]

Four developers each train a digit classifier on their own images, taken in their own
way: upright, with inverted colours, rotated by 90 degrees, mirrored. Each uploads a
learnware (a scikit-learn pipeline over 1 x 8 x 8 images with pixel values 0..255, and
the RKMEImageSpecification of the training images); the market checks each one in its
sandbox (on random images) and all must become USABLE. A user whose images are rotated
makes the specification of those images locally, searches, and reuses what the market
finds; the accuracy of every learnware on the user's images shows whether the search
found the right one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
from _market import ROOT, fresh_work_dir, running_market, section
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from lwm.client import MarketClient
from lwm.client.cli import print_search
from lwm.learnware.template import write_learnware_zip
from lwm.spec import RKMEImageSpecification, generate_semantic_spec

IMAGE_SHAPE = (1, 8, 8)
TRAIN_IMAGES_PER_LEARNWARE = 300
USER_IMAGES = 300
# Small reduced sets and few steps keep each specification to seconds on a CPU.
SPEC_POINTS, SPEC_STEPS = 10, 3
DOMAINS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "upright": lambda images: images,
    "inverted": lambda images: 255.0 - images,
    "rotated": lambda images: np.rot90(images, k=1, axes=(2, 3)),
    "mirrored": lambda images: images[..., ::-1],
}
USER_DOMAIN = "rotated"


def load_images() -> tuple[np.ndarray, np.ndarray]:
    """The digits as (N, 1, 8, 8) float32 images with pixel values 0..255 (the dataset's are 0..16), and their labels."""
    digits = load_digits()
    images = np.clip(digits.images * 16.0, 0.0, 255.0).astype(np.float32)[:, None]
    return images, digits.target


def image_spec(images: np.ndarray) -> RKMEImageSpecification:
    spec = RKMEImageSpecification()
    spec.generate_stat_spec_from_data(np.ascontiguousarray(images), K=SPEC_POINTS, steps=SPEC_STEPS)
    return spec


def semantic_spec(domain: str) -> dict:
    return generate_semantic_spec(
        name=f"digits-{domain}",
        description=f"Logistic regression for 8 x 8 images of handwritten digits, {domain} (pixel values 0..255).",
        data_type="Image",
        task_type="Classification",
        library_type="Scikit-learn",
        scenarios=["Education"],
        license="MIT",
        output_description={"Dimension": 10, "Description": {str(d): f"score of the digit {d}" for d in range(10)}},
    )


def train_classifier(images: np.ndarray, labels: np.ndarray) -> Pipeline:
    # np.reshape by reference pickles into the zip; the learnware's sandbox has numpy and scikit-learn.
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, int(np.prod(IMAGE_SHAPE)))})
    return make_pipeline(flatten, StandardScaler(), LogisticRegression(max_iter=2000)).fit(images, labels)


def main() -> int:
    work_dir = fresh_work_dir(__doc__, ROOT / ".lwm-examples" / "image")
    images, labels = load_images()
    order = np.random.default_rng(0).permutation(len(images))
    user_rows, developer_rows = order[:USER_IMAGES], order[USER_IMAGES:]
    with running_market(work_dir) as market, MarketClient(market.address) as client:
        section(f"training and uploading {len(DOMAINS)} digit learnwares (specifications of {TRAIN_IMAGES_PER_LEARNWARE} images each)")
        domain_of: dict[str, str] = {}
        for number, (domain, transform) in enumerate(DOMAINS.items()):
            rows = developer_rows[number * TRAIN_IMAGES_PER_LEARNWARE : (number + 1) * TRAIN_IMAGES_PER_LEARNWARE]
            x_train = transform(images[rows])
            model = train_classifier(x_train, labels[rows])
            zip_path = write_learnware_zip(
                work_dir / "zips" / f"digits-{domain}.zip", model, semantic_spec(domain), image_spec(x_train),
                input_shape=IMAGE_SHAPE, output_shape=(10,), requirements=["scikit-learn", "numpy"],
            )
            learnware = client.add_learnware(zip_path, semantic_spec(domain), wait=True)
            print(f"  {learnware.id}  {learnware.status:<8} {learnware.name}", flush=True)
            if learnware.status != "USABLE":
                print(f"learnware digits-{domain} is {learnware.status}: {learnware.check_report}")
                return 1
            domain_of[learnware.id] = domain

        section(f"a user with {USER_IMAGES} {USER_DOMAIN} digit images searches with their RKMEImageSpecification")
        x_user, y_user = DOMAINS[USER_DOMAIN](images[user_rows]), labels[user_rows]
        results = client.search_learnware({"Data": {"Values": ["Image"], "Type": "Class"}, "Task": {"Values": ["Classification"], "Type": "Class"}}, image_spec(x_user))
        print_search(results)
        top = results.get_single_results()[0].learnware
        print(f"top-1 learnware: {top.name} (the user's images are {USER_DOMAIN})")

        section("reuse: every learnware on the user's images (sandboxed on the market)")
        for learnware_id, domain in domain_of.items():
            accuracy = float((client.predict(learnware_id, x_user).argmax(axis=1) == y_user).mean())
            print(f"  digits-{domain:<9} accuracy {accuracy:.3f}{'   <- found by the search' if learnware_id == top.id else ''}")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"image workflow finished in {time.perf_counter() - started:.1f} s")
    sys.exit(code)
