/* The portal's small progressive enhancements; every page works without them. */
(function () {
  "use strict";

  // A select that submits its form when changed (language, organisation, filters).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("select[data-autosubmit]") && target.form) {
      target.form.submit();
    }
  });

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text) node.textContent = text;
    return node;
  }

  function renderSteps(list, steps) {
    var fragment = document.createDocumentFragment();
    steps.forEach(function (step) {
      var item = el("li", "step step-" + step.status);
      item.dataset.stepId = step.id;
      item.appendChild(el("span", "step-dot"));
      item.appendChild(el("span", "step-time", step.at));
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "step-name", step.label || step.name));
      if (step.host) {
        item.appendChild(document.createTextNode(" "));
        item.appendChild(el("span", "muted", "(" + step.host + ")"));
      }
      item.appendChild(document.createTextNode(" "));
      item.appendChild(el("span", "step-status", step.status_label));
      if (step.detail) item.appendChild(el("div", "step-detail", step.detail));
      fragment.appendChild(item);
    });
    if (steps.length) {
      list.replaceChildren(fragment);
    }
  }

  // Live progress of a renewal run: poll its steps every second until it ends.
  function follow(section) {
    var url = section.dataset.runPoll;
    var list = section.querySelector("[data-steps]");
    var status = section.querySelector("#run-status");
    var spinner = section.querySelector("#run-spinner");
    var note = section.querySelector("#live-note");
    var error = section.querySelector("#run-error");
    var finished = section.querySelector("#run-finished");
    var started = section.querySelector("#run-started");

    function tick() {
      fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" })
        .then(function (response) {
          if (!response.ok) throw new Error(response.status);
          return response.json();
        })
        .then(function (run) {
          renderSteps(list, run.steps);
          status.textContent = run.status_label;
          status.className = "badge run-" + run.status + (run.stalled ? " run-stalled" : "");
          section.dataset.status = run.status;
          if (started && run.started_at) started.textContent = run.started_at;
          if (run.open) {
            window.setTimeout(tick, 1000);
            return;
          }
          spinner.classList.add("hidden");
          if (note) note.classList.add("hidden");
          if (finished && run.finished_at) finished.textContent = run.finished_at;
          if (error && run.error) {
            error.textContent = run.error;
            error.classList.remove("hidden");
          }
        })
        .catch(function () {
          window.setTimeout(tick, 3000);  // a blip of the network: keep following
        });
    }
    tick();
  }

  // The DNS-01 fields only matter for DNS-01: hidden otherwise, never removed.
  function toggleChallengeFields() {
    var challenge = document.getElementById("id_challenge");
    if (!challenge) return;
    document.querySelectorAll("[data-show-when-challenge]").forEach(function (block) {
      var wanted = block.dataset.showWhenChallenge === challenge.value;
      var hasError = block.querySelector(".has-error");
      block.hidden = !wanted && !hasError;
    });
  }

  document.addEventListener("change", function (event) {
    if (event.target.id === "id_challenge") toggleChallengeFields();
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-run-poll]").forEach(follow);
    toggleChallengeFields();
  });
})();
