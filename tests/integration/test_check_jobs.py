"""Durable check jobs in the organizer's database, on SQLite and on a real PostgreSQL:
a PENDING learnware and its job commit together, a lease is held by one claimer at a time,
an expired lease passes the job on, only the holder ends a job (once), and a job is tried a
bounded number of times before the learnware is reported INVALID."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter

import pytest
from organizer_testing import db_url, pg_url, postgres  # noqa: F401 - fixtures

from lwm.services.organizer.metadata import JOB_DONE, JOB_FAILED, JOB_QUEUED, JOB_RUNNING, LeaseLost, MetadataStore

pytestmark = pytest.mark.integration
REPORT = json.dumps({"status": "LEARNWARE_STATUS_USABLE", "steps": [{"name": "predict", "passed": True}]})


def add(store: MetadataStore, learnware_id: str, status: str = "PENDING") -> None:
    store.add(learnware_id=learnware_id, owner="alice", status=status, semantic_spec={}, stat_specs=[], zip_key=f"learnwares/{learnware_id}.zip", zip_size=1, zip_sha256="0" * 64)


def test_a_pending_learnware_is_checked_once_by_the_holder_of_its_lease(db_url: str) -> None:
    store = MetadataStore(db_url)
    add(store, "lw1")
    [queued] = store.jobs_of("lw1")
    assert queued.state == JOB_QUEUED and queued.attempts == 0
    before = store.get("lw1")
    assert before is not None and before.status == "PENDING"

    job = store.claim_check_job("checker-a", lease_s=60)
    assert job is not None and (job.id, job.state, job.attempts, job.lease_holder) == (queued.id, JOB_RUNNING, 1, "checker-a")
    assert store.claim_check_job("checker-b", lease_s=60) is None  # leased: nobody else gets it

    with pytest.raises(LeaseLost):
        store.complete_check_job(job.id, "checker-b", "USABLE", REPORT)
    ended, record = store.complete_check_job(job.id, "checker-a", "USABLE", REPORT)
    assert ended.state == JOB_DONE and ended.finished_at > 0
    assert record is not None and record.status == "USABLE" and record.check_report == REPORT and record.revision > before.revision
    with pytest.raises(LeaseLost):  # the outcome is written once
        store.complete_check_job(job.id, "checker-a", "INVALID", REPORT)
    with pytest.raises(LeaseLost):
        store.heartbeat_check_job(job.id, "checker-a", lease_s=60)
    assert [j.state for j in store.jobs_of("lw1")] == [JOB_DONE]
    assert store.claim_check_job("checker-b", lease_s=60) is None
    assert store.unfinished_jobs() == 0
    store.close()


def test_a_learnware_stored_checked_gets_no_job_and_a_recheck_queues_one(db_url: str) -> None:
    store = MetadataStore(db_url)
    add(store, "lw1", status="USABLE")
    assert store.jobs_of("lw1") == []
    recheck = store.create_check_job("lw1")
    assert recheck is not None and recheck.state == JOB_QUEUED
    assert store.create_check_job("lw1") == recheck  # one queued job checks the newest state
    record = store.get("lw1")
    assert record is not None and record.status == "USABLE"  # unchanged until the recheck ends
    assert store.create_check_job("unknown") is None
    # Made PENDING again (a new semantic spec) while a job is queued: that job checks the change.
    store.update("lw1", status="PENDING")
    assert [j.id for j in store.jobs_of("lw1")] == [recheck.id]
    job = store.claim_check_job("checker-a", lease_s=60)
    assert job is not None and job.id == recheck.id
    store.update("lw1", status="PENDING")  # changed while checked: a new job checks the change
    assert [j.state for j in store.jobs_of("lw1")] == [JOB_RUNNING, JOB_QUEUED]
    store.close()


def test_an_expired_lease_passes_the_job_to_another_checker_and_the_first_cannot_end_it(db_url: str) -> None:
    store = MetadataStore(db_url)
    add(store, "lw1")
    first = store.claim_check_job("checker-a", lease_s=0.2)
    assert first is not None
    time.sleep(0.3)
    second = store.claim_check_job("checker-b", lease_s=60)
    assert second is not None and second.id == first.id and second.attempts == 2
    assert second.last_error == "the lease of checker-a expired (the checker stopped or lost contact)"
    with pytest.raises(LeaseLost):
        store.heartbeat_check_job(first.id, "checker-a", lease_s=60)
    with pytest.raises(LeaseLost):
        store.complete_check_job(first.id, "checker-a", "USABLE", REPORT)
    store.heartbeat_check_job(second.id, "checker-b", lease_s=60)
    ended, record = store.complete_check_job(second.id, "checker-b", "USABLE", REPORT)
    assert record is not None and record.status == "USABLE"
    assert ended.last_error == second.last_error  # the job keeps why its first attempt did not finish
    store.close()


def test_a_heartbeat_keeps_the_lease(db_url: str) -> None:
    store = MetadataStore(db_url)
    add(store, "lw1")
    job = store.claim_check_job("checker-a", lease_s=0.2)
    assert job is not None
    renewed = store.heartbeat_check_job(job.id, "checker-a", lease_s=600)
    assert renewed.lease_expires_at > job.lease_expires_at + 500
    time.sleep(0.3)  # past the first lease
    assert store.claim_check_job("checker-b", lease_s=60) is None
    store.close()


def test_a_job_is_tried_a_bounded_number_of_times_then_the_learnware_is_reported_invalid(db_url: str) -> None:
    store = MetadataStore(db_url, max_check_attempts=2)
    add(store, "lw1")
    first = store.claim_check_job("checker-a", lease_s=60)
    assert first is not None
    requeued, record = store.fail_check_attempt(first.id, "checker-a", "UNAVAILABLE: object storage is unreachable")
    assert (requeued.state, requeued.last_error, record) == (JOB_QUEUED, "UNAVAILABLE: object storage is unreachable", None)
    second = store.claim_check_job("checker-b", lease_s=0.2)
    assert second is not None and second.attempts == 2
    time.sleep(0.3)  # checker-b "dies": its lease expires on the last attempt
    assert store.claim_check_job("checker-c", lease_s=60) is None
    [failed] = store.jobs_of("lw1")
    assert failed.state == JOB_FAILED and failed.attempts == 2
    record = store.get("lw1")
    assert record is not None and record.status == "INVALID"
    report = json.loads(record.check_report)
    assert report["status"] == "LEARNWARE_STATUS_INVALID"
    assert report["steps"][0]["messages"] == ["the check was attempted 2 times and never finished; last error: the lease of checker-b expired (the checker stopped or lost contact)"]


def test_the_last_failed_attempt_reports_its_error(db_url: str) -> None:
    store = MetadataStore(db_url, max_check_attempts=1)
    add(store, "lw1")
    job = store.claim_check_job("checker-a", lease_s=60)
    assert job is not None
    ended, record = store.fail_check_attempt(job.id, "checker-a", "RuntimeError: disk full")
    assert ended.state == JOB_FAILED and record is not None and record.status == "INVALID"
    assert "attempted 1 times and never finished; last error: RuntimeError: disk full" in record.check_report
    with pytest.raises(LeaseLost):
        store.fail_check_attempt(job.id, "checker-a", "again")


def test_concurrent_claimers_of_two_organizers_never_share_a_job(db_url: str) -> None:
    stores = [MetadataStore(db_url), MetadataStore(db_url)]
    ids = [f"lw{i}" for i in range(24)]
    for learnware_id in ids:
        add(stores[0], learnware_id)
    claimed: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def claimer(store: MetadataStore, holder: str) -> None:
        try:
            while (job := store.claim_check_job(holder, lease_s=600)) is not None:
                with lock:
                    claimed.append(job.learnware_id)
                store.complete_check_job(job.id, holder, "USABLE", REPORT)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=claimer, args=(stores[i % 2], f"checker-{i}")) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert Counter(claimed) == Counter(ids)  # each job once, none lost
    assert all(stores[1].jobs_of(i)[0].state == JOB_DONE for i in ids)
    for store in stores:
        store.close()
