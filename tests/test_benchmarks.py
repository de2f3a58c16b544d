"""Real benchmark acquisition, records, counts, the BBH split and the JSONL writer/reader."""
from __future__ import annotations

import io
import json
import re
import shutil
import tarfile

import pytest

from edit.benchmarks import parsers, sources
from edit.benchmarks import suites as suite_lib
from edit.config_schema import section_defaults
from edit.io import DataError
from edit.records import Question

#: sha256 of the canonical JSON of the BBH split with seed 0 and test fraction 0.2 (see bbh_split).
PINNED_SPLIT_SHA256 = "c545db322fbee9026285ea1a96c49b2ca9a3805ea8dbefd7bddfa4036ea4ae0e"


#: the teacher's prompt files, pinned in the same table (tests/test_mirror_pins.py)
PROMPT_FOLDERS = ("bbh/cot-prompts/", "edit_prompts/")


def _no_network(url, dest, timeout=60.0):
    raise AssertionError(f"network attempted: {url}")


@pytest.fixture(scope="module")
def suites(mirror, tmp_path_factory):
    """Every suite loaded from the mirror with downloads forbidden (the downloader raises)."""
    mp = pytest.MonkeyPatch()
    mp.setattr(sources, "_download", _no_network)
    files = sources.BenchmarkFiles(mirror, tmp_path_factory.mktemp("cache"), allow_download=True)
    out = parsers.load_all(files, section_defaults("benchmarks"))
    mp.undo()
    assert set(files.origin.values()) == {"mirror"}
    benchmark_files = [p for p in sources.load_sources()["files"] if not p.startswith(PROMPT_FOLDERS)]
    assert len(files.origin) == len(benchmark_files)  # every pinned benchmark file verified
    return out


# ---------------------------------------------------------------- counts


def test_suite_counts(suites, mirror):
    c = suite_lib.counts(suites)
    assert c["bbh"]["total"] == 6511
    assert len(c["bbh"]["tasks"]) == 27
    for task, n in c["bbh"]["tasks"].items():
        upstream = json.loads((mirror / "bbh" / "bbh" / f"{task}.json").read_text())["examples"]
        assert n == len(upstream), task
    assert sum(c["bbh"]["tasks"].values()) == 6511
    assert c["agieval"]["total"] == 2546
    assert set(c["agieval"]["tasks"]) == set(suite_lib.AGIEVAL_SUBSETS)
    for s, n in c["agieval"]["tasks"].items():
        lines = [ln for ln in (mirror / "agieval/data/v1" / f"{s}.jsonl").read_text().splitlines() if ln.strip()]
        assert n == len(lines), s
    assert c["arc_e"]["total"] == 2376
    assert c["arc_c"]["total"] == 1172
    bb = c["bb_sub"]["tasks"]
    assert len(bb) == 60 and set(bb) == set(suite_lib.BB_SUB_TASKS)
    assert all(0 < n <= 100 for n in bb.values())
    assert "indic_cause_and_effect" in suite_lib.BB_SUB_MISSING and "indic_cause_and_effect" not in bb


def test_arc_numeric_labels_and_five_options(suites):
    for suite, n_numeric in (("arc_e", 97), ("arc_c", 22)):
        numeric = [it for it in suites[suite] if it.labels[0] == "(1)"]
        assert len(numeric) == n_numeric
        assert all(re.fullmatch(r"\(\d\)", it.target) for it in numeric)
    # the data README mentions one 5-option ARC-E item; the files hold 4 (ARC-E) and 3 (ARC-C),
    # and 7 / 4 items with 3 options
    for suite, n5, n3 in (("arc_e", 4, 7), ("arc_c", 3, 4)):
        sizes = [len(it.labels) for it in suites[suite]]
        assert (sizes.count(5), sizes.count(3)) == (n5, n3), suite
    five = next(it for it in suites["arc_e"] if len(it.labels) == 5)
    assert five.labels[-1] == "(E)" and five.choices[-1] in five.input


def test_items_are_valid_and_unique(suites):
    for suite, items in suites.items():
        ids = [it.id for it in items]
        assert len(ids) == len(set(ids)), suite
        for it in items[:: max(1, len(items) // 50)]:
            assert it.suite == suite and it.id.startswith(f"{suite}/{it.task}/")
            suite_lib.validate_item(it)
            if it.answer_type == "option":
                assert "\nOptions:\n" in it.input
                assert it.target in it.labels and len(it.choices) == len(it.labels)
                for lab, ch in zip(it.labels, it.choices):
                    assert f"\n{lab} {ch}" in it.input


def test_bbh_items_keep_upstream_text(suites, mirror):
    ex = json.loads((mirror / "bbh/bbh/date_understanding.json").read_text())["examples"]
    items = [it for it in suites["bbh"] if it.task == "date_understanding"]
    assert [(it.input, it.target) for it in items] == [(e["input"], e["target"]) for e in ex]
    assert items[0].answer_type == "option" and items[0].labels == ("(A)", "(B)", "(C)", "(D)", "(E)", "(F)")
    assert {it.answer_type for it in suites["bbh"] if it.task == "dyck_languages"} == {"dyck"}
    # the three upstream golds that are an option's text (split by a comma) are free text
    quirks = {it.id: it.target for it in suites["bbh"] if it.answer_type == "free_text"}
    assert quirks == {"bbh/movie_recommendation/00163": "Monsters, Inc",
                      "bbh/ruin_names/00099": "dearth, wind, & fire",
                      "bbh/ruin_names/00144": "rita, sue and bob poo"}


def test_question_compat(suites):
    it = suites["arc_c"][0]
    q = it.question()
    assert isinstance(q, Question) and (q.id, q.task, q.input, q.target) == (it.id, it.task, it.input, it.target)


def test_agieval_rendering_and_quirks(suites, mirror):
    rows = [json.loads(ln) for ln in (mirror / "agieval/data/v1/sat-en.jsonl").read_text().splitlines()]
    it = next(i for i in suites["agieval"] if i.id == "agieval/sat-en/00000")
    assert it.input.startswith(rows[0]["passage"].strip()[:200])
    assert rows[0]["question"].strip() in it.input
    assert it.target == f"({rows[0]['label']})"
    # logiqa-en record 2 has options printed "A No dangshen": labelled by position, text without the letter
    q = next(i for i in suites["agieval"] if i.id == "agieval/logiqa-en/00002")
    assert q.choices[0] == "No dangshen" and q.labels == ("(A)", "(B)", "(C)", "(D)") and q.target == "(B)"
    assert "\n(A) No dangshen\n" in q.input
    no_passage = next(i for i in suites["agieval"] if i.id == "agieval/aqua-rat/00000")
    assert no_passage.input.startswith("A car is being driven")


def test_bb_sub_rendering(suites):
    items = {it.id: it for it in suites["bb_sub"]}
    ana = items["bb_sub/anachronisms/00000"]
    assert ana.answer_type == "option" and ana.choices == ("Yes", "No") and ana.target == "(B)"
    assert "Does the preceding sentence contain non-contemporaneous" in ana.input  # output prefix kept
    chess = items["bb_sub/checkmate_in_one/00000"]  # preferred_score exact_str_match -> free text
    assert chess.answer_type == "free_text" and chess.target == "Rh5#" and "Options:" not in chess.input
    kanji = [it for it in suites["bb_sub"] if it.id.startswith("bb_sub/kanji_ascii/kanji_ascii_pronunciation/")]
    assert kanji and all(it.answer_type == "free_text" for it in kanji)
    geo = items["bb_sub/intersect_geometry/shapes_2/00000"]  # 41 numeric options -> open number
    assert geo.answer_type == "number" and geo.target == "1" and not geo.labels
    # ties on the best score are all accepted (gre_reading_comprehension has 6)
    ties = [it for it in suites["bb_sub"] if it.task == "gre_reading_comprehension" and len(it.targets) > 1]
    assert ties and all(set(it.targets) <= set(it.labels) for it in ties)
    many = [it for it in suites["bb_sub"] if len(it.labels) > 26]
    assert many and all(it.labels[0] == "(1)" for it in many)
    # cause_and_effect has empty inputs: the question comes from the task prefix
    ce = items["bb_sub/cause_and_effect/one_sentence/00000"]
    assert ce.input.startswith("Which of the following sentences makes more sense?\nOptions:\n(A) ")


def test_bb_sub_cap_spreads_over_subtasks(suites):
    per = {}
    for it in suites["bb_sub"]:
        if it.task == "abstract_narrative_understanding":
            sub = it.id.split("/")[2]
            per[sub] = per.get(sub, 0) + 1
    assert per == {"4_distractors": 34, "99_distractors": 33, "9_distractors": 33}


# ---------------------------------------------------------------- split


def test_bbh_split_pinned_and_4_to_1(suites):
    split = suite_lib.bbh_split(suites["bbh"], seed=0, test_fraction=0.2)
    assert suite_lib.split_sha256(split) == PINNED_SPLIT_SHA256
    for task, parts in split["tasks"].items():
        n = len(parts["train"]) + len(parts["test"])
        assert not set(parts["train"]) & set(parts["test"])
        assert len(parts["test"]) == round(n / 5), task
    assert sum(len(p["test"]) for p in split["tasks"].values()) == 1302
    # independent of item order, sensitive to the seed
    assert suite_lib.bbh_split(list(reversed(suites["bbh"])), 0, 0.2) == split
    assert suite_lib.split_sha256(suite_lib.bbh_split(suites["bbh"], 1, 0.2)) != PINNED_SPLIT_SHA256
    test = suite_lib.split_part(suites["bbh"], split, "test")
    assert len(test) == 1302 and len(suite_lib.split_part(suites["bbh"], split, "train")) == 5209


def test_cap_per_task_rule():
    def its(n, sub):
        return [suite_lib.BenchItem(f"bb_sub/t/{sub}/{i:05d}", "bb_sub", "t", "q", "x", "free_text") for i in range(n)]

    got = parsers.cap_per_task({"b": its(100, "b"), "a": its(10, "a"), "c": its(100, "c")}, 100)
    n = {s: sum(1 for it in got if it.id.split("/")[2] == s) for s in "abc"}
    assert n == {"a": 10, "b": 45, "c": 45}
    assert [it.id for it in got][:2] == ["bb_sub/t/a/00000", "bb_sub/t/a/00001"]
    assert len(parsers.cap_per_task({"a": its(7, "a")}, 100)) == 7


# ---------------------------------------------------------------- acquisition errors


def _tmp_mirror(tmp_path, mirror, rel):
    dst = tmp_path / "mirror" / rel
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mirror / rel, dst)
    return tmp_path / "mirror", dst


def test_bad_checksum_is_an_error(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(sources, "_download", _no_network)
    rel = "bbh/bbh/navigate.json"
    m, dst = _tmp_mirror(tmp_path, mirror, rel)
    dst.write_text(dst.read_text().replace('"No"', '"Yes"', 1))
    files = sources.BenchmarkFiles(m, tmp_path / "cache")
    with pytest.raises(DataError, match=r"navigate\.json.*checksum mismatch"):
        parsers.load_bbh(files, ["navigate"])


def test_missing_file_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_download", _no_network)
    (tmp_path / "empty").mkdir()
    files = sources.BenchmarkFiles(tmp_path / "empty", tmp_path / "cache", allow_download=False)
    with pytest.raises(DataError, match=r"bbh/bbh/snarks\.json: missing"):
        parsers.load_bbh(files, ["snarks"])

    def offline(url, dest, timeout=60.0):
        raise OSError("no route to host")

    monkeypatch.setattr(sources, "_download", offline)
    files = sources.BenchmarkFiles(tmp_path / "empty", tmp_path / "cache")
    with pytest.raises(DataError, match=r"snarks\.json: download from https://raw\.githubusercontent\.com/.*failed"):
        parsers.load_bbh(files, ["snarks"])
    with pytest.raises(DataError, match="not in the pinned source table"):
        files.path("bbh/bbh/no_such_task.json")


def test_malformed_record_names_file_and_record(tmp_path, mirror):
    rel = "bbh/bbh/web_of_lies.json"
    m, dst = _tmp_mirror(tmp_path, mirror, rel)
    data = json.loads(dst.read_text())
    del data["examples"][7]["target"]
    dst.write_text(json.dumps(data))
    table = {"files": {rel: {"url": "https://example.invalid/x", "sha256": sources.sha256_file(dst)}}}
    files = sources.BenchmarkFiles(m, tmp_path / "cache", allow_download=False, sources=table)
    with pytest.raises(DataError, match=r"web_of_lies\.json: example 7: field 'target'"):
        parsers.load_bbh(files, ["web_of_lies"])


@pytest.mark.parametrize("rel,mutate,pattern", [
    ("arc/ARC-Challenge-Test.json", lambda d: d[3].update(target="(Q)"), r"ARC-Challenge-Test\.json: item 3: target"),
    ("agieval/data/v1/lsat-ar.jsonl", None, r"lsat-ar\.jsonl: record 4: label"),
])
def test_malformed_arc_and_agieval(tmp_path, mirror, rel, mutate, pattern):
    m, dst = _tmp_mirror(tmp_path, mirror, rel)
    if mutate is not None:
        data = json.loads(dst.read_text())
        mutate(data)
        dst.write_text(json.dumps(data))
    else:
        lines = dst.read_text().splitlines()
        rec = json.loads(lines[4])
        rec["label"] = "Z"
        lines[4] = json.dumps(rec)
        dst.write_text("\n".join(lines) + "\n")
    table = {"files": {rel: {"url": "https://example.invalid/x", "sha256": sources.sha256_file(dst)}}}
    files = sources.BenchmarkFiles(m, tmp_path / "cache", allow_download=False, sources=table)
    with pytest.raises(DataError, match=pattern):
        if "ARC" in rel:
            parsers.load_arc(files, "arc_c")
        else:
            parsers.load_agieval(files, ["lsat-ar"])


def test_download_once_into_cache_and_verified(tmp_path, mirror, monkeypatch):
    rel = "bbh/bbh/sports_understanding.json"
    calls = []

    def fake(url, dest, timeout=60.0):  # "the network": serve the upstream bytes
        calls.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(mirror / rel, dest)

    monkeypatch.setattr(sources, "_download", fake)
    files = sources.BenchmarkFiles(None, tmp_path / "cache")
    items = parsers.load_bbh(files, ["sports_understanding"])
    assert len(items) == 250 and files.origin[rel] == "download"
    assert calls == [sources.load_sources()["files"][rel]["url"]]
    assert "suzgunmirac/BIG-Bench-Hard/9ee07bd/bbh/sports_understanding.json" in calls[0]
    again = sources.BenchmarkFiles(None, tmp_path / "cache")
    assert parsers.load_bbh(again, ["sports_understanding"]) == items and again.origin[rel] == "cache"
    assert len(calls) == 1

    def corrupt(url, dest, timeout=60.0):
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text("{}")

    monkeypatch.setattr(sources, "_download", corrupt)
    with pytest.raises(DataError, match="checksum mismatch"):
        sources.BenchmarkFiles(None, tmp_path / "cache2").path(rel)
    assert not (tmp_path / "cache2" / rel).exists()  # a bad download is not kept
    (tmp_path / "cache" / rel).write_text("{}")  # a corrupted cache copy is reported, not used
    with pytest.raises(DataError, match="bad cached copy"):
        sources.BenchmarkFiles(None, tmp_path / "cache").path(rel)


def test_bigbench_extracted_from_archive(tmp_path, monkeypatch):
    """The sdist path: member extracted, reduced to 100 by Random(0).sample in original order."""
    task = {"name": "toy", "preferred_score": "multiple_choice_grade",
            "examples": [{"input": f"q{i}", "target_scores": {"yes": i % 2, "no": 1 - i % 2}} for i in range(150)]}
    raw = json.dumps(task).encode()
    tgz = tmp_path / "bb.tar.gz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("bigbench-1.0.0/bigbench/benchmark_tasks/toy/task.json")
        info.size = len(raw)
        tar.addfile(info, io.BytesIO(raw))
    expected = sources.sample_bigbench_task(task)
    assert len(expected["examples"]) == 100 and expected["sampled_from"] == 150
    idx = [int(e["input"][1:]) for e in expected["examples"]]
    assert idx == sorted(idx) and idx != list(range(100))
    table = {"archives": {"bb.tar.gz": {"url": "https://files.pythonhosted.org/x/bb.tar.gz", "sha256": sources.sha256_file(tgz)}},
             "files": {"bigbench_sub/toy/task.json": {
                 "archive": "bb.tar.gz", "member": "bigbench-1.0.0/bigbench/benchmark_tasks/toy/task.json",
                 "sha256": "0" * 64, "content_sha256": sources.canonical_json_sha256(expected)}}}

    def fake(url, dest, timeout=60.0):
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(tgz, dest)

    monkeypatch.setattr(sources, "_download", fake)
    files = sources.BenchmarkFiles(None, tmp_path / "cache", sources=table)
    items = parsers.load_bb_sub(files, 100, ["toy"])
    assert [it.input.split("\n")[0] for it in items] == [f"q{i}" for i in idx]
    assert items[0].choices == ("yes", "no")  # option order = target_scores order
    assert items[0].target == ("(A)" if idx[0] % 2 else "(B)")
    # a tampered pin is caught
    table["files"]["bigbench_sub/toy/task.json"]["content_sha256"] = "f" * 64
    with pytest.raises(DataError, match="content checksum mismatch"):
        sources.BenchmarkFiles(None, tmp_path / "cache", sources=table).path("bigbench_sub/toy/task.json")


def test_mirror_bigbench_files_follow_the_sampling_rule(mirror):
    for rel, entry in sources.load_sources()["files"].items():
        if "archive" not in entry:
            continue
        data = json.loads((mirror / rel).read_text())
        n = len(data.get("examples", []))
        assert n <= 100, rel
        if "sampled_from" in data:
            assert n == 100 and data["sampled_from"] > 100, rel


# ---------------------------------------------------------------- writer / reader


def test_write_and_read_roundtrip(tmp_path, suites):
    small = {s: items[:40] for s, items in suites.items()}
    split = suite_lib.bbh_split(small["bbh"], 0, 0.2)
    doc = suite_lib.write_benchmarks(tmp_path, small, split)
    assert doc["suites"]["bbh"]["total"] == 40 and doc["bb_sub_missing"] == ["indic_cause_and_effect"]
    assert json.loads((tmp_path / "counts.json").read_text()) == doc
    for s, items in small.items():
        assert suite_lib.read_suite(tmp_path / f"{s}.jsonl") == items
    assert suite_lib.read_bbh_part(tmp_path, "test") == suite_lib.split_part(small["bbh"], split, "test")
    first = (tmp_path / "bbh.jsonl").read_bytes()
    suite_lib.write_benchmarks(tmp_path, small, split)
    assert (tmp_path / "bbh.jsonl").read_bytes() == first  # deterministic bytes


@pytest.mark.parametrize("patch,pattern", [
    ({"target": "(Z)"}, r"gold '\(Z\)' is not one of the labels"),
    ({"answer_type": "letters"}, "unknown answer_type"),
    ({"choices": "abc"}, "must be a list of strings"),
    ({"extra": 1}, "unknown field"),
])
def test_reader_rejects_bad_records(tmp_path, suites, patch, pattern):
    rec = {**suites["arc_e"][0].to_dict(), **patch}
    if patch.get("target"):
        rec["targets"] = [patch["target"]]
    path = tmp_path / "arc_e.jsonl"
    path.write_text(json.dumps(suites["arc_e"][1].to_dict()) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(DataError, match=rf"arc_e\.jsonl:2 \(id arc_e/arc_e/00000\): .*{pattern}"):
        suite_lib.read_suite(path)


def test_reader_rejects_duplicate_ids(tmp_path, suites):
    path = tmp_path / "arc_c.jsonl"
    line = json.dumps(suites["arc_c"][0].to_dict())
    path.write_text(line + "\n" + line + "\n")
    with pytest.raises(DataError, match="duplicate id"):
        suite_lib.read_suite(path)


def test_answer_type_table():
    assert len(suite_lib.BBH_ANSWER_TYPES) == 27
    assert suite_lib.answer_type("word_sorting") == "words" and suite_lib.answer_type("object_counting") == "number"
    with pytest.raises(ValueError, match="not a BBH task"):
        suite_lib.answer_type("anachronisms")


def test_no_network_when_mirror_has_the_file(tmp_path, mirror, monkeypatch):
    monkeypatch.setattr(sources, "_download", _no_network)
    files = sources.BenchmarkFiles(mirror, tmp_path / "cache")  # downloads allowed, but never needed
    assert len(parsers.load_arc(files, "arc_c")) == 1172
    assert files.origin == {"arc/ARC-Challenge-Test.json": "mirror"}
    assert not (tmp_path / "cache").exists()  # nothing copied anywhere


def test_pins_match_the_mirror(mirror):
    table = sources.load_sources()
    assert sources.pin_table(mirror, table) == table
    urls = [e["url"] for e in table["files"].values() if "url" in e]
    # benchmarks: 27 BBH + 8 AGIEval + 2 ARC; prompt files: 27 BBH CoT + 3 x 27 EDIT + 4 vanilla
    assert len(urls) == 27 + 8 + 2 + 27 + 3 * 27 + 4 and all(u.startswith("https://raw.githubusercontent.com/") for u in urls)
    assert table["archives"]["bigbench-1.0.0.tar.gz"]["url"].startswith("https://files.pythonhosted.org/")
