"""The study page: one HTML file with its script, served by :mod:`i2i.study.server`.

Each trial preloads both images, shows them side by side for ``show_ms`` milliseconds, hides
them, then takes the answer: a click on the side that was real, or the keys ``F`` / left arrow
(left) and ``J`` / right arrow (right). Practice trials tell whether the answer was right.
``body[data-state]`` says where the page is (``loading``, ``intro``, ``showing``, ``answer``,
``feedback``, ``break``, ``done``, ``error``) and ``body[data-trial]`` which trial it is on.

>>> page = study_page(10, 40, 1000)
>>> "which one is real" in page.lower() and "data-state" in page
True
"""

from __future__ import annotations

import html

_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Real or generated?</title>
<style>
body { font-family: sans-serif; margin: 2em auto; max-width: 760px; text-align: center; }
#pair { display: flex; gap: 24px; justify-content: center; margin: 1.5em 0; }
.side { width: 320px; height: 320px; background: #777; border: 4px solid transparent;
        cursor: pointer; display: flex; align-items: center; justify-content: center; }
.side img { max-width: 100%; max-height: 100%; visibility: hidden; }
body[data-state="showing"] .side img { visibility: visible; }
body[data-state="answer"] .side:hover { border-color: #ffb000; }
#message { min-height: 3em; font-size: 1.2em; }
.hint { color: #555; }
button { font-size: 1.1em; padding: 0.4em 1.2em; }
</style></head>
<body data-state="loading" data-trial="-1">
<h1>Which one is real?</h1>
<p class="hint">Each trial shows a real photo and a generated one for __SECONDS__ s. Then they
disappear: click the side that was <b>real</b>, or press <kbd>F</kbd> / &larr; for left,
<kbd>J</kbd> / &rarr; for right. The first __PRACTICE__ trials are practice and tell you if you
were right; the __MAIN__ after them do not.</p>
<div id="progress"></div>
<div id="pair">
  <div class="side" id="left" data-side="left"><img alt="left image"></div>
  <div class="side" id="right" data-side="right"><img alt="right image"></div>
</div>
<div id="message">Loading&hellip;</div>
<button id="go" hidden>Start</button>
<script>
(function () {
  "use strict";
  var SHOW_MS = __SHOW_MS__;
  var body = document.body, msg = document.getElementById("message");
  var go = document.getElementById("go"), progress = document.getElementById("progress");
  var imgs = { left: document.querySelector("#left img"), right: document.querySelector("#right img") };
  var session = null, trials = [], current = 0, hiddenAt = 0, onGo = null;

  function state(s) { body.setAttribute("data-state", s); }
  function fail(text) { state("error"); msg.textContent = text; go.hidden = true; }
  function post(path, data) {
    return fetch(path, { method: "POST", headers: { "Content-Type": "application/json" },
                         body: JSON.stringify(data) })
      .then(function (r) { return r.json().then(function (j) {
        if (!r.ok) { throw new Error(j.error || ("HTTP " + r.status)); } return j; }); });
  }
  function waitGo(label, text, next) {
    state(trials.length && current > 0 ? "break" : "intro");
    msg.textContent = text; go.textContent = label; go.hidden = false; onGo = next;
  }
  function pressGo() {
    if (!onGo) { return; }
    var next = onGo; onGo = null; go.hidden = true; next();
  }
  function load(src, img) {
    return new Promise(function (ok, bad) {
      img.onload = function () { ok(); };
      img.onerror = function () { bad(new Error("could not load " + src)); };
      img.src = src;
    });
  }
  function run() {
    if (current >= trials.length) {
      state("done"); msg.textContent = "Done. Thank you!"; return;
    }
    var t = trials[current];
    body.setAttribute("data-trial", String(current));
    body.setAttribute("data-phase", t.phase);
    var main = trials.filter(function (x) { return x.phase === "main"; }).length;
    progress.textContent = t.phase === "practice"
      ? "Practice " + (current + 1) + " of " + (trials.length - main)
      : "Trial " + (current + 1 - (trials.length - main)) + " of " + main;
    state("loading"); msg.textContent = "";
    imgs.left.removeAttribute("src"); imgs.right.removeAttribute("src");
    Promise.all([load(t.left, imgs.left), load(t.right, imgs.right)]).then(function () {
      state("showing");
      setTimeout(function () {
        state("answer"); hiddenAt = performance.now();
        msg.textContent = "Which one was real?";
      }, SHOW_MS);
    }, function (e) { fail(e.message); });
  }
  function answer(side) {
    if (body.getAttribute("data-state") !== "answer") { return; }
    var t = trials[current];
    state("sending");
    post("/api/answer", { session: session, trial: t.index, choice: side,
                          response_ms: Math.round(performance.now() - hiddenAt) })
      .then(function (r) {
        current += 1;
        var practiceOver = t.phase === "practice" && (current >= trials.length ||
                                                       trials[current].phase === "main");
        if (t.phase === "practice") {
          state("feedback");
          msg.textContent = r.correct ? "Correct: the real one was on the " + r.real_side + "."
                                      : "Wrong: the real one was on the " + r.real_side + ".";
          setTimeout(function () {
            if (practiceOver && current < trials.length) {
              waitGo("Continue", "Practice over. The next trials give no feedback.", run);
            } else { run(); }
          }, 700);
        } else { run(); }
      }, function (e) { fail(e.message); });
  }
  document.getElementById("left").addEventListener("click", function () { answer("left"); });
  document.getElementById("right").addEventListener("click", function () { answer("right"); });
  go.addEventListener("click", pressGo);
  document.addEventListener("keydown", function (e) {
    var k = e.key.toLowerCase();
    if (k === "f" || k === "arrowleft") { answer("left"); }
    else if (k === "j" || k === "arrowright") { answer("right"); }
    else if (k === " " || k === "enter") { e.preventDefault(); pressGo(); }
  });
  var who = new URLSearchParams(location.search).get("participant");
  post("/api/session", who ? { participant: who } : {}).then(function (s) {
    session = s.session; trials = s.trials; body.setAttribute("data-session", session);
    waitGo("Start", "Press Start (or the space bar) when ready.", run);
  }, function (e) { fail(e.message); });
})();
</script>
</body></html>
"""


def study_page(practice: int, main: int, show_ms: int) -> str:
    """The page's HTML for a study of ``practice`` + ``main`` trials shown ``show_ms`` each."""
    return (
        _PAGE.replace("__SHOW_MS__", str(int(show_ms)))
        .replace("__SECONDS__", html.escape(f"{show_ms / 1000:g}"))
        .replace("__PRACTICE__", str(int(practice)))
        .replace("__MAIN__", str(int(main)))
    )
