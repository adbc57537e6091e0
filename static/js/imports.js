// The import page's progress bar: polls /imports/<id>/progress/ every second while the job runs,
// updates the <progress> and its sentence, and when the job finishes swaps in the page's fresh
// result section (counts, error report, revert). Without JavaScript the page refreshes itself.
(function () {
  "use strict";

  const INTERVAL = 1000;

  function section() {
    return document.getElementById("import-status");
  }

  function show(progress) {
    const bar = document.getElementById("import-progress-bar");
    const text = document.getElementById("import-progress-text");
    const percent = Math.max(0, Math.min(100, Math.round(progress.percent || 0)));
    if (bar) {
      bar.value = percent;
      bar.textContent = percent + "%";
    }
    if (text && text.textContent !== progress.text) text.textContent = progress.text;
  }

  async function swapInResult() {
    // The finished page renders the counts and links; take its section rather than rebuild it here.
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) throw new Error("HTTP " + response.status);
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("import-status");
      const current = section();
      if (!fresh || !current) throw new Error("no result section");
      current.replaceWith(document.adoptNode(fresh));
      const heading = page.querySelector(".import-meta");
      const meta = document.querySelector(".import-meta");
      if (heading && meta) meta.replaceWith(document.adoptNode(heading));
    } catch (error) {
      location.reload();
    }
  }

  async function poll(url) {
    let progress = null;
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (response.ok) progress = await response.json();
    } catch (error) {
      // A dropped connection or a restarting server: try again on the next tick.
    }
    if (progress) {
      show(progress);
      if (progress.finished) {
        swapInResult();
        return;
      }
    }
    window.setTimeout(poll, INTERVAL, url);
  }

  const start = section();
  if (start && start.dataset.progressUrl) poll(start.dataset.progressUrl);
})();
