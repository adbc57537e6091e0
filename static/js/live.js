// The live connection for signed-in pages: one WebSocket to /ws/board/ that only says
// "lead X changed". Pages fetch what they show themselves: the board (board.js) listens for the
// "leadboard:lead-event" and "leadboard:resync" events this file dispatches on document; the
// lead page swaps in its fresh timeline; the bell refetches its unread count. If the socket
// drops, every page keeps working and this reconnects with back-off, then resyncs.
(function () {
  "use strict";

  if (!("WebSocket" in window)) return;
  const CLOSE_UNAUTHENTICATED = 4401;
  const MIN_DELAY = 1000;
  const MAX_DELAY = 30000;
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws/board/";
  const status = document.getElementById("live-status");
  let socket = null;
  let attempts = 0;
  let everConnected = false;
  let retryTimer = null;

  function setStatus(state, text) {
    if (!status) return;
    status.hidden = false;
    status.dataset.state = state;
    status.textContent = text;
  }

  // --- the bell: any change may have brought a notification ---
  let bellTimer = null;
  function refreshBell() {
    const count = document.querySelector("#notification-bell [data-unread-count]");
    if (!count) return;
    window.clearTimeout(bellTimer);
    bellTimer = window.setTimeout(async () => {
      try {
        const response = await fetch("/notifications/unread/", {
          credentials: "same-origin", headers: { Accept: "application/json" },
        });
        if (!response.ok) return;  // not built yet (404) or signed out: leave the bell alone
        const data = await response.json();
        if (typeof data.unread !== "number") return;
        count.textContent = String(data.unread);
        count.closest("#notification-bell").classList.toggle("has-unread", data.unread > 0);
      } catch (err) { /* offline: the next event or page load fixes it */ }
    }, 300);
  }

  // --- the lead page: /leads/<id>/ ---
  const leadPage = location.pathname.match(/^\/leads\/(\d+)\/$/);
  const leadPageId = leadPage ? parseInt(leadPage[1], 10) : null;

  function leadPageNotice(text) {
    let notice = document.getElementById("live-lead-notice");
    if (!notice) {
      notice = document.createElement("div");
      notice.id = "live-lead-notice";
      notice.className = "live-notice";
      notice.setAttribute("aria-live", "polite");  // not role=status: the flash messages own that
      const main = document.getElementById("main");
      main.prepend(notice);
    }
    const p = document.createElement("p");
    p.textContent = text + " ";
    const reload = document.createElement("a");
    reload.href = location.href;
    reload.textContent = "Reload the page";
    p.append(reload);
    notice.replaceChildren(p);
  }

  // The version the page was rendered at: every form on the lead page carries it.
  function pageVersion() {
    const input = document.querySelector('#main input[name="version"]');
    return input ? parseInt(input.value, 10) : null;
  }

  async function refreshLeadPage(message) {
    if (message.deleted) {
      leadPageNotice("This lead was deleted or left your view.");
      return;
    }
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (response.status === 404) { leadPageNotice("This lead is no longer yours to see."); return; }
      if (!response.ok) return;
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = doc.querySelector("ol.timeline");
      const current = document.querySelector("ol.timeline");
      if (fresh && current) current.replaceWith(fresh);
    } catch (err) { return; }
    const version = pageVersion();
    if (version !== null && message.version !== null && message.version > version) {
      leadPageNotice("This lead changed since you opened it; the timeline is up to date.");
    }
  }

  function handle(message) {
    if (!message || (message.type !== "lead.event" && message.type !== "lead.removed")) return;
    // A bulk change (a CSV import batch) names no card: reload the columns once (import engine).
    if (message.batch) {
      document.dispatchEvent(new CustomEvent("leadboard:resync"));
      return;
    }
    document.dispatchEvent(new CustomEvent("leadboard:lead-event", { detail: message }));
    if (leadPageId !== null && message.lead_id === leadPageId) refreshLeadPage(message);
    refreshBell();
  }

  // --- the connection ---
  function connect() {
    retryTimer = null;
    try {
      socket = new WebSocket(url);
    } catch (err) {
      scheduleReconnect();
      return;
    }
    socket.addEventListener("open", () => {
      const resync = everConnected;
      everConnected = true;
      attempts = 0;
      setStatus("live", "Live");
      // Events sent while we were away are lost: let the page catch up.
      if (resync) {
        document.dispatchEvent(new CustomEvent("leadboard:resync"));
        if (leadPageId !== null) refreshLeadPage({ deleted: false, version: null });
        refreshBell();
      }
    });
    socket.addEventListener("message", (event) => {
      let message;
      try { message = JSON.parse(event.data); } catch (err) { return; }
      handle(message);
    });
    socket.addEventListener("close", (event) => {
      socket = null;
      if (event.code === CLOSE_UNAUTHENTICATED) {
        setStatus("offline", "Offline: sign in again for live updates");
        return;
      }
      scheduleReconnect();
    });
  }

  function scheduleReconnect() {
    if (retryTimer !== null) return;
    setStatus("reconnecting", "Reconnecting…");
    // 1 s, 2 s, 4 s ... up to 30 s, each with up to a third of jitter so a restarted server is
    // not hit by every browser at the same instant.
    const base = Math.min(MAX_DELAY, MIN_DELAY * 2 ** attempts);
    attempts += 1;
    const delay = Math.min(MAX_DELAY, base + Math.random() * base / 3);
    retryTimer = window.setTimeout(connect, delay);
  }

  // Back online or back to the tab: try now rather than at the end of a long back-off.
  function reconnectSoon() {
    if (socket || retryTimer === null) return;
    window.clearTimeout(retryTimer);
    retryTimer = null;
    connect();
  }
  window.addEventListener("online", reconnectSoon);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) reconnectSoon(); });
  window.addEventListener("pagehide", () => { if (socket) socket.close(1000); });

  connect();
})();
