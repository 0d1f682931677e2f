"""The per-flow state table: insert/find, timeouts, bounded capacity, log, export/import."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nfvkit.packet.flow import hash_words
from nfvkit.vnf.state import StateSchema, StateSnapshot, StateTable
from nfvkit.vnf.state import kernels as K
from nfvkit.vnf.state.keys import address_words, decode_flow_key, flow_columns
from nfvkit.vnf.state.snapshot import SnapshotError

SCHEMA = StateSchema((("a", 1), ("b", 1)), (("count", "<u8"), ("port", "<u2")))
SEC = 1_000_000_000


def key(a: int, b: int = 0) -> np.ndarray:
    return np.array([a, b], dtype=np.uint32)


def put(t: StateTable, a: int, now: int, b: int = 0) -> tuple[int, bool]:
    k = key(a, b)
    return K.find_or_insert(t.tbl, k, int(hash_words(k, t.seed)), now)


def get(t: StateTable, a: int, now: int, b: int = 0) -> int:
    k = key(a, b)
    return K.find(t.tbl, k, int(hash_words(k, t.seed)), now)


def test_row_is_one_cache_line_for_a_flow_key_schema():
    s = StateSchema((("src", 4), ("dst", 4), ("ports", 1), ("proto", 1)), (("x", "<u4"),))
    assert s.row_dtype().itemsize == 64


def test_insert_then_find_keeps_values_and_counts():
    t = StateTable(SCHEMA, 100, 10 * SEC)
    s, created = put(t, 7, 0)
    assert created and s >= 0
    t.rows[s]["count"] = 41
    s2, created2 = put(t, 7, SEC)
    assert (s2, created2) == (s, False)
    assert get(t, 7, SEC) == s and get(t, 8, SEC) == -1
    assert t.rows[s]["count"] == 41 and t.rows[s]["expire"] == 10 * SEC
    assert t.stats()["live"] == 1 and t.stats()["created"] == 1


def test_new_entry_has_zeroed_values_even_in_a_reused_slot():
    t = StateTable(SCHEMA, 1, SEC, log_retired=True)
    s, _ = put(t, 1, 0)
    t.rows[s]["count"] = 99
    t.rows[s]["flags"] = 3
    s2, created = put(t, 2, 5 * SEC)  # 1 has expired; its slot may be reused
    assert created
    assert t.rows[s2]["count"] == 0 and t.rows[s2]["flags"] == 0


def test_expiry_by_timestamp_is_logged_with_the_reason():
    t = StateTable(SCHEMA, 100, SEC, log_retired=True)
    s, _ = put(t, 5, 0)
    t.rows[s]["count"] = 3
    assert get(t, 5, SEC - 1) == s
    assert get(t, 5, SEC) == -1  # expire is exclusive
    log = t.drain_log()
    assert list(log["key"][0]) == [5, 0] and log["count"][0] == 3
    assert log["state"][0] == K.R_EXPIRED
    assert t.stats()["expired"] == 1 and len(t) == 0
    assert len(t.drain_log()) == 0


def test_full_table_refuses_new_keys_and_never_grows():
    t = StateTable(SCHEMA, 4, 100 * SEC)
    slots = t.slots
    for a in range(4):
        assert put(t, a, 0)[0] >= 0
    assert put(t, 99, 1) == (-1, False)
    assert t.stats()["refused"] == 1 and len(t) == 4 and t.slots == slots
    assert put(t, 2, 2)[0] >= 0  # existing keys still work


def test_full_table_evicts_the_entry_closest_to_expiry():
    t = StateTable(SCHEMA, 3, 100 * SEC, on_full="evict", log_retired=True)
    for a, now in ((1, 30), (2, 10), (3, 20)):
        put(t, a, now)
    assert put(t, 4, 40)[1]
    assert get(t, 2, 40) == -1 and get(t, 1, 40) >= 0 and get(t, 3, 40) >= 0
    assert t.stats()["evicted"] == 1
    assert t.drain_log()["state"].tolist() == [K.R_EVICTED]


def test_full_table_sweeps_expired_entries_before_refusing():
    t = StateTable(SCHEMA, 50, SEC)
    for a in range(50):
        put(t, a, 0)
    assert put(t, 1000, 2 * SEC)[1]  # everything else has expired: swept, not refused
    assert t.stats()["refused"] == 0 and t.stats()["expired"] == 50 and len(t) == 1


def test_remove_and_compaction_keep_other_keys_findable():
    t = StateTable(SCHEMA, 1000, 100 * SEC)
    for a in range(1000):
        put(t, a, 0)
    for a in range(0, 1000, 2):
        K.remove(t.tbl, get(t, a, 0))
    t.maintain()  # 500 tombstones > slots/4 = 512? not yet
    for a in range(1000, 1400):
        put(t, a, 0)
        K.remove(t.tbl, get(t, a, 0))
    assert t.stats()["tombstones"] > t.slots // 4
    t.maintain()
    assert t.stats()["tombstones"] == 0 and len(t) == 500
    assert all(get(t, a, 1) >= 0 for a in range(1, 1000, 2))
    assert all(get(t, a, 1) == -1 for a in range(0, 1000, 2))


def test_export_import_round_trip_through_bytes_with_selection():
    src = StateTable(SCHEMA, 100, 10 * SEC)
    for a in range(10):
        s, _ = put(src, a, SEC, b=a % 2)
        src.rows[s]["count"] = a * 10
    snap = src.export(select=lambda r: r["key"][:, 1] == 1)
    assert sorted(int(k[0]) for k in snap.records["key"]) == [1, 3, 5, 7, 9]
    whole = StateSnapshot("test", "t0", {"flows": snap})
    back = StateSnapshot.from_bytes(whole.to_bytes())
    dst = StateTable(SCHEMA, 100, 10 * SEC)
    put(dst, 3, SEC, b=1)  # an entry with the same key is replaced
    result = dst.import_(back.tables["flows"])
    assert (result.added, result.replaced, result.refused) == (4, 1, 0)
    for a in (1, 3, 5, 7, 9):
        s = get(dst, a, 2 * SEC, b=1)
        assert s >= 0 and dst.rows[s]["count"] == a * 10 and dst.rows[s]["expire"] == 11 * SEC


def test_import_rebase_keeps_remaining_lifetime():
    src = StateTable(SCHEMA, 10, 10 * SEC)
    put(src, 1, 0)  # expires at 10 s; snapshot at 4 s -> 6 s left
    snap = src.export(now=4 * SEC)
    dst = StateTable(SCHEMA, 10, 10 * SEC)
    put(dst, 2, 100 * SEC)  # the importing table's clock is at 100 s
    dst.import_(snap, rebase=True)
    assert dst.rows[get(dst, 1, 100 * SEC)]["expire"] == 106 * SEC


def test_import_refuses_beyond_capacity_and_checks_schema():
    src = StateTable(SCHEMA, 10, 10 * SEC)
    for a in range(10):
        put(src, a, 0)
    small = StateTable(SCHEMA, 4, 10 * SEC)
    r = small.import_(src.export())
    assert (r.added, r.refused) == (4, 6) and len(small) == 4
    other = StateTable(StateSchema((("a", 2),), (("count", "<u8"),)), 4, SEC)
    with pytest.raises(ValueError, match="schema mismatch"):
        other.import_(src.export())


def test_corrupt_snapshot_bytes_raise_a_clear_error():
    with pytest.raises(SnapshotError, match="not a state snapshot"):
        StateSnapshot.from_bytes(b"garbage")


def test_flow_key_helpers_decode_addresses_and_ports():
    k = np.zeros(10, np.uint32)
    k[0:4] = address_words("198.18.0.1")
    k[4:8] = address_words("2001:db8::5")
    k[8] = (1234 << 16) | 80
    k[9] = 6
    assert decode_flow_key(k) == {
        "src": "198.18.0.1",
        "dst": "2001:db8::5",
        "sport": 1234,
        "dport": 80,
        "proto": 6,
    }
    rec = np.zeros(1, StateSchema((("f", 10),), ()).row_dtype())
    rec["key"][0] = k
    cols = flow_columns(rec)
    assert cols["sport"][0] == 1234 and cols["dport"][0] == 80 and cols["proto"][0] == 6


ops = st.lists(
    st.tuples(st.sampled_from(["put", "get", "del"]), st.integers(0, 40), st.integers(0, 3)),
    max_size=200,
)


@given(ops)
def test_table_behaves_like_a_dict_with_expiry(seq):
    """Against a model: a dict of key -> expiry, capacity 16, refuse when full."""
    t = StateTable(SCHEMA, 16, 5 * SEC)
    model: dict[int, int] = {}
    now = 0
    for op, a, dt in seq:
        now += dt * SEC
        model = {k: e for k, e in model.items() if e > now}
        if op == "put":
            s, created = put(t, a, now)
            if a in model:
                assert (s >= 0, created) == (True, False)
            elif len(model) < 16:
                assert s >= 0 and created
                model[a] = now + 5 * SEC
            else:
                assert s == -1
        elif op == "get":
            assert (get(t, a, now) >= 0) == (a in model)
        elif a in model:
            K.remove(t.tbl, get(t, a, now))
            del model[a]
    t.sweep(now)
    assert len(t) == len(model)


def test_rows_start_on_a_cache_line_even_after_compaction():
    t = StateTable(SCHEMA, 64, SEC)
    assert t.rows.ctypes.data % 64 == 0
    for a in range(64):
        K.remove(t.tbl, put(t, a, 0)[0])
    t.maintain()
    assert t.stats()["tombstones"] == 0 and t.rows.ctypes.data % 64 == 0
