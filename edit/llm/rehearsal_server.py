"""A scripted gpt-3.5 stand-in for the paper profile's rehearsal: an OpenAI-compatible server on
127.0.0.1 that answers CEP, AHP and CCP prompts built from EDIT's own prompt files
(``teacher.prompt_source: edit_files``) in the teacher's format, right for some questions and wrong
for others, so that D+, D-, D-+ and D+- are all non-empty for every task.

It is :class:`edit.llm.testing.ScriptedChatServer` (HTTP, counting, ``/stats``, fault rules) with
another reply for a successful call (:class:`TeacherScript`):

* the prompt is recognised by the text of the file it was filled from (``<mirror>/edit_prompts/
  {cot-prompts,cot-ahp,cot-ccp}/<task>.txt``: the part before ``{QUESTION}``), which gives the
  prompt kind and the task; the rest of the file, with its placeholders, parses out the question
  (and the hint's answer for AHP, the right CoT for CCP);
* the gold answer and the question's place in its task are read from the questions file the data
  stage writes before it calls the teacher (``data/questions/train.jsonl``, re-read when it
  changes): CEP answers the 1st, 3rd, ... question of a task wrongly (D-) and the others rightly
  (D+); AHP answers the hinted answer (D-+); CCP keeps the right CoT's path and changes its key
  step and answer (D+-). A wrong answer is another answer of the same task in BBH
  (``<mirror>/bbh/bbh/<task>.json``), so it is in the task's answer format;
* replies look like a chat model's: the reasoning lines and "Therefore, the answer is X.", with
  some echoes and run-ons (a repeated "A: Let's think step by step." line, a "Wrong Response:"
  label, a following "Q:" exemplar) that the reply parser must cut.

    python -m edit.llm.rehearsal_server --port-file PATH --questions data/questions/train.jsonl \\
        [--mirror ../shared/data] [--port 0]
"""
from __future__ import annotations

import argparse
import json
import re
import threading
from pathlib import Path

from edit.benchmarks.suites import answer_type
from edit.llm.prompts import EDIT_PROMPT_DIRS
from edit.llm.testing import ScriptedChatServer, _h, _Handler, serve_until_killed
from edit.records import ANSWER_PHRASE
from edit.scoring import score

_PLACEHOLDER = re.compile(r"\{(QUESTION|CORRECT|RIGHT|WRONG)\}")
_KEY_LINE = re.compile(r"^\(2\) .*$", re.MULTILINE)


def _remainder_regex(rest: str) -> re.Pattern:
    """A regex for the filled text of a prompt file after its ``{QUESTION}``: ``{WRONG}`` is
    filled with "" (edit.llm.prompts), every other placeholder is a named group."""
    out, pos = ["(?P<QUESTION>.*?)"], 0
    for m in _PLACEHOLDER.finditer(rest):
        out.append(re.escape(rest[pos:m.start()]))
        name = m.group(1)
        if name != "WRONG":
            out.append(f"(?P<{name}>.*?)")
        pos = m.end()
    out.append(re.escape(rest[pos:]))
    return re.compile("".join(out) + r"\Z", re.DOTALL)


class TeacherScript:
    """Replies to EDIT prompt files; see the module docstring."""

    def __init__(self, mirror: str | Path, questions: str | Path):
        self.mirror = Path(mirror)
        self.questions_path = Path(questions)
        self._lock = threading.Lock()
        self._stamp = None
        self._questions: dict[str, dict] = {}
        self.templates: list[tuple[str, str, str, re.Pattern]] = []   # (prefix, kind, task, remainder)
        for kind, folder in EDIT_PROMPT_DIRS.items():
            for path in sorted((self.mirror / "edit_prompts" / folder).glob("*.txt")):
                text = path.read_bytes().decode("utf-8")
                prefix, sep, rest = text.partition("{QUESTION}")
                if sep:
                    self.templates.append((prefix, kind, path.stem, _remainder_regex(rest)))
        if not self.templates:
            raise FileNotFoundError(f"no EDIT prompt files under {self.mirror / 'edit_prompts'}")
        self.templates.sort(key=lambda t: -len(t[0]))
        self._answers: dict[str, list[str]] = {}

    # ------------------------------------------------------------------ what the prompt asks
    def parse(self, prompt: str) -> dict | None:
        """``{"kind", "task", "question", "correct"?, "right"?}`` of a filled EDIT prompt file, or None."""
        for prefix, kind, task, rx in self.templates:
            if prompt.startswith(prefix):
                m = rx.match(prompt, len(prefix))
                if m:
                    return {"kind": kind, "task": task, **{k.lower(): v for k, v in m.groupdict().items()}}
        return None

    def question(self, text: str) -> dict | None:
        """The question's record in the questions file, with ``rank``: its place among its task's questions."""
        with self._lock:
            try:
                stat = self.questions_path.stat()
            except OSError:
                return None
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp != self._stamp:
                table, seen = {}, {}
                for line in self.questions_path.read_text(encoding="utf-8").splitlines():
                    if line.strip():
                        q = json.loads(line)
                        table[q["input"]] = {**q, "rank": seen.get(q["task"], 0)}
                        seen[q["task"]] = seen.get(q["task"], 0) + 1
                self._questions, self._stamp = table, stamp
            return self._questions.get(text)

    def answers(self, task: str) -> list[str]:
        """The distinct answers of ``task`` in BBH, sorted."""
        if task not in self._answers:
            path = self.mirror / "bbh" / "bbh" / f"{task}.json"
            examples = json.loads(path.read_text(encoding="utf-8"))["examples"] if path.is_file() else []
            self._answers[task] = sorted({str(e["target"]) for e in examples})
        return self._answers[task]

    def wrong_answer(self, task: str, gold: str, question: str) -> str:
        """Another answer of ``task`` than ``gold`` that the task's answer type reads as wrong (BBH
        has a few odd targets, e.g. a band name among ruin_names' options; which one: a hash of the
        question)."""
        atype = answer_type(task)
        others = [a for a in self.answers(task)
                  if not score(f"{ANSWER_PHRASE} {a}.", gold, atype)["correct"]
                  and score(f"{ANSWER_PHRASE} {a}.", a, atype)["correct"]]
        if not others:
            return gold + " not"
        return others[int(_h("wrong", question)[:8], 16) % len(others)]

    # ------------------------------------------------------------------ the reply
    @staticmethod
    def cot(question: str, answer: str) -> str:
        """A CoT in the teacher's format; its second line is the key step."""
        words = " ".join(question.split()[:8])
        return (f"(1) The question reads: \"{words} ...\".\n"
                f"(2) Working through it step by step, the result is {answer}.\n"
                f"{ANSWER_PHRASE} {answer}.")

    def reply(self, prompt: str) -> str:
        """The reply to one prompt (a plain CoT with an arbitrary answer for an unknown prompt)."""
        p = self.parse(prompt)
        if p is None:
            return self.cot(prompt[-200:], "(A)")
        q = self.question(p["question"]) or {"target": p.get("correct") or "(A)", "rank": 1}
        gold = str(q["target"])
        flavour = int(_h("flavour", p["kind"], p["question"])[:8], 16) % 3
        if p["kind"] == "cep":
            answer = self.wrong_answer(p["task"], gold, p["question"]) if q["rank"] % 2 == 0 else gold
            text = self.cot(p["question"], answer)
            return text + ("\n\nQ: Another question follows here.\nA: Let's think step by step." if flavour == 0 else "")
        if p["kind"] == "ahp":
            text = self.cot(p["question"], (p.get("correct") or gold).strip())
            return ("A: Let's think step by step.\n" + text) if flavour == 0 else text
        right = (p.get("right") or "").strip()
        wrong = self.wrong_answer(p["task"], gold, p["question"])
        if _KEY_LINE.search(right) and right.endswith(f"{ANSWER_PHRASE} {gold}."):
            text = _KEY_LINE.sub(lambda m: f"(2) Working through it step by step, the result is {wrong}.", right, 1)
            text = text[: -len(f"{ANSWER_PHRASE} {gold}.")] + f"{ANSWER_PHRASE} {wrong}."
        else:
            text = self.cot(p["question"], wrong)
        return ("Wrong Response: " + text) if flavour == 1 else text


class _RehearsalHandler(_Handler):
    """The test server's handler; a successful call is answered by the server's TeacherScript."""

    def _reply(self, owner, key, fault, body, messages, last_user, sample_index, temperature):
        if fault != "ok":
            return super()._reply(owner, key, fault, body, messages, last_user, sample_index, temperature)
        text = owner.script.reply(last_user)
        prompt_tokens = sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1
        completion_tokens = len(text) // 4 + 1
        reply = {"id": "chatcmpl-" + key[:12], "object": "chat.completion", "created": 0,
                 "model": body.get("model", "scripted"),
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                              "finish_reason": "stop", "logprobs": None}],
                 "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                           "total_tokens": prompt_tokens + completion_tokens}}
        owner._count_ok(key)
        self._send(200, json.dumps(reply).encode())


class RehearsalServer(ScriptedChatServer):
    """``with RehearsalServer(mirror, questions_file) as srv: srv.base_url`` (in this process)."""

    def __init__(self, mirror: str | Path, questions: str | Path, port: int = 0, **kwargs):
        super().__init__(port=port, **kwargs)
        self.script = TeacherScript(mirror, questions)
        self._httpd.RequestHandlerClass = _RehearsalHandler


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file", required=True, help="written with the port once the server listens")
    ap.add_argument("--questions", default="data/questions/train.jsonl")
    ap.add_argument("--mirror", default="../shared/data")
    ap.add_argument("--faults", default="[]", help="fault rules as JSON (edit.llm.testing)")
    a = ap.parse_args(argv)
    serve_until_killed(RehearsalServer(a.mirror, a.questions, port=a.port, faults=json.loads(a.faults)), a.port_file)


if __name__ == "__main__":
    main()
