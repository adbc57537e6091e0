// Board moves by drag-and-drop and by keyboard, on top of each card's plain move form.
// Every move posts that same form with fetch(); the server answers JSON and the page
// updates the card and both columns' counts without a reload. Without JavaScript the
// forms still work on their own.
(function () {
  "use strict";

  const board = document.querySelector("[data-board]");
  if (!board) return;
  const live = document.getElementById("board-live");
  const lostDialog = document.getElementById("lost-dialog");
  const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
  let dragged = null;   // the card being dragged with the mouse
  let picked = null;    // the card picked up with the keyboard
  let pickedTarget = null;
  let moving = null;    // the card whose move is being asked about (lost reason) or posted

  const columns = () => Array.from(board.querySelectorAll(".column"));
  const columnOf = (el) => el.closest(".column");
  const announce = (text) => { live.textContent = ""; window.setTimeout(() => { live.textContent = text; }, 30); };

  function flash(text, level) {
    let box = document.querySelector(".messages");
    if (!box) {
      box = document.createElement("div");
      box.className = "messages";
      box.setAttribute("role", "status");
      document.getElementById("main").before(box);
    }
    const p = document.createElement("p");
    p.className = "message message-" + level;
    p.textContent = text;
    box.replaceChildren(p);
  }

  function adjustColumn(column, countDelta, valueDelta) {
    const count = column.querySelector("[data-count]");
    const total = column.querySelector("[data-total]");
    const n = parseInt(count.textContent.replace(/\D/g, ""), 10) + countDelta;
    count.textContent = money.format(n);
    column.querySelector("[data-count-label]").textContent = n === 1 ? "lead" : "leads";
    const t = parseFloat(total.textContent.replace(/[^\d.-]/g, "")) + valueDelta;
    total.textContent = money.format(Math.round(t));
    const list = column.querySelector(".cards");
    const empty = list.querySelector(".empty");
    if (n > 0 && empty) empty.remove();
  }

  function askLostReason() {
    return new Promise((resolve) => {
      const text = lostDialog.querySelector("textarea");
      const error = lostDialog.querySelector("[data-lost-error]");
      text.value = "";
      error.hidden = true;
      const onClose = () => {
        lostDialog.removeEventListener("close", onClose);
        resolve(lostDialog.returnValue === "move" ? text.value.trim() : null);
      };
      lostDialog.querySelector("form").onsubmit = (event) => {
        if (event.submitter && event.submitter.value === "move" && !text.value.trim()) {
          event.preventDefault();
          error.hidden = false;
          text.focus();
        }
      };
      lostDialog.addEventListener("close", onClose);
      lostDialog.showModal();
      text.focus();
    });
  }

  async function moveCard(card, targetColumn) {
    moving = card;
    try {
      await postMove(card, targetColumn);
    } finally {
      moving = null;
      released(card.dataset.leadId);
    }
  }

  async function postMove(card, targetColumn) {
    const fromColumn = columnOf(card);
    if (!targetColumn || targetColumn === fromColumn) return;
    const form = card.querySelector(".move-form");
    const body = new FormData(form);
    body.set("stage", targetColumn.dataset.stageId);
    if (targetColumn.dataset.stageKind === "lost") {
      const reason = await askLostReason();
      if (reason === null) { card.focus(); return; }
      body.set("lost_reason", reason);
    }
    card.setAttribute("aria-busy", "true");
    let response, data;
    try {
      response = await fetch(form.action, {
        method: "POST", body, credentials: "same-origin",
        headers: { Accept: "application/json", "X-Requested-With": "fetch" },
      });
      data = await response.json();
    } catch (err) {
      card.removeAttribute("aria-busy");
      flash("The move did not reach the server. Check your connection and try again.", "error");
      return;
    }
    card.removeAttribute("aria-busy");
    if (!response.ok || !data.ok) {
      flash(data.error || "The lead was not moved.", "error");
      announce("Not moved: " + (data.error || ""));
      // On a conflict the server sends the card as it is now: show it, with its current version.
      const current = data.card_html ? placeCard(card, data.card_html) : card;
      if (current) current.focus();
      return;
    }
    const fresh = placeCard(card, data.card_html);
    fresh.classList.add("just-moved");
    fresh.focus();
    const message = "Moved " + fresh.querySelector(".card-name").textContent + " to " + targetColumn.dataset.stageName + ".";
    flash(message, "success");
    announce(message);
  }

  // Put the server's fresh card where its stage is, and keep both columns' totals right.
  // Returns the new card, or null when its column is not on this (filtered) board.
  function placeCard(card, html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    const fresh = template.content.firstElementChild;
    const fromColumn = columnOf(card);
    const toColumn = board.querySelector('.column[data-stage-id="' + fresh.dataset.stageId + '"]');
    const oldValue = parseFloat(card.dataset.value) || 0;
    const newValue = parseFloat(fresh.dataset.value) || 0;
    if (toColumn === fromColumn) {
      card.replaceWith(fresh);
      adjustColumn(fromColumn, 0, newValue - oldValue);
      return fresh;
    }
    card.remove();
    adjustColumn(fromColumn, -1, -oldValue);
    if (!fromColumn.querySelector(".lead-card")) {
      const li = document.createElement("li");
      li.className = "empty";
      li.textContent = "No leads here.";
      fromColumn.querySelector(".cards").append(li);
    }
    if (!toColumn) return null;
    toColumn.querySelector(".cards").prepend(fresh);
    adjustColumn(toColumn, +1, +newValue);
    return fresh;
  }

  // --- mouse drag-and-drop ---
  board.addEventListener("dragstart", (event) => {
    const card = event.target.closest(".lead-card");
    if (!card) return;
    dragged = card;
    card.classList.add("dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", card.dataset.leadId);
  });
  board.addEventListener("dragend", () => {
    if (dragged) dragged.classList.remove("dragging");
    const leadId = dragged && dragged.dataset.leadId;
    dragged = null;
    if (leadId) released(leadId);
    columns().forEach((c) => c.classList.remove("drop-target"));
  });
  board.addEventListener("dragover", (event) => {
    const column = columnOf(event.target);
    if (!dragged || !column) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    columns().forEach((c) => c.classList.toggle("drop-target", c === column && c !== columnOf(dragged)));
  });
  board.addEventListener("drop", (event) => {
    const column = columnOf(event.target);
    if (!dragged || !column) return;
    event.preventDefault();
    const card = dragged;
    columns().forEach((c) => c.classList.remove("drop-target"));
    moveCard(card, column);
  });

  // --- keyboard: Space picks a card up, arrows choose a column, Enter drops, Escape cancels ---
  function cancelPick() {
    if (!picked) return;
    picked.classList.remove("picked");
    columns().forEach((c) => c.classList.remove("drop-target"));
    const leadId = picked.dataset.leadId;
    picked = pickedTarget = null;
    released(leadId);
  }
  board.addEventListener("keydown", (event) => {
    const card = event.target.closest(".lead-card");
    if (!card || event.target !== card) return;  // keys inside the card's form behave normally
    if (!picked && (event.key === " " || event.key === "Enter")) {
      if (event.key === "Enter") return;  // Enter on a card leaves the link/forms alone
      event.preventDefault();
      picked = card;
      pickedTarget = columnOf(card);
      card.classList.add("picked");
      announce("Picked up " + card.querySelector(".card-name").textContent + ". Use left and right arrows to choose a column, Enter to drop, Escape to cancel.");
      return;
    }
    if (picked !== card) return;
    const all = columns();
    if (event.key === "ArrowRight" || event.key === "ArrowLeft") {
      event.preventDefault();
      const step = event.key === "ArrowRight" ? 1 : -1;
      const index = Math.min(Math.max(all.indexOf(pickedTarget) + step, 0), all.length - 1);
      pickedTarget = all[index];
      all.forEach((c) => c.classList.toggle("drop-target", c === pickedTarget && c !== columnOf(card)));
      announce(pickedTarget.dataset.stageName);
    } else if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      const target = pickedTarget;
      cancelPick();
      moveCard(card, target);
    } else if (event.key === "Escape") {
      event.preventDefault();
      cancelPick();
      announce("Move cancelled.");
    }
  });
  board.addEventListener("focusout", (event) => {
    if (picked && event.target === picked && !lostDialog.open) cancelPick();
    // Someone using a card's stage menu held the card; it is theirs until focus leaves it.
    const card = event.target.closest(".lead-card");
    if (card && !card.contains(event.relatedTarget)) window.setTimeout(() => released(card.dataset.leadId), 0);
  });

  // --- live updates (live.js): other people's changes, applied without a reload ---
  // A note says only "lead X changed"; the card endpoint answers with the card as this person
  // may see it under this page's filters, and every shown column's count and value.
  const waiting = new Map();  // lead id -> a change that arrived while the person held the card
  const latest = new Map();   // lead id -> number of the newest card request, to drop stale answers
  let requests = 0;
  let resyncWanted = false;

  function cardOf(leadId) { return document.getElementById("lead-" + leadId); }

  // Never yank a card from someone's hand: dragged, picked up, being moved, or its menu in use.
  function holding(leadId) {
    const held = [dragged, picked, moving].some((c) => c && c.dataset.leadId === String(leadId));
    const card = cardOf(leadId);
    return held || Boolean(card && card !== document.activeElement && card.contains(document.activeElement));
  }
  function handsFree() { return !dragged && !picked && !moving && !lostDialog.open; }

  function released(leadId) {
    if (resyncWanted && handsFree()) { resync(); return; }
    if (!leadId || !waiting.has(String(leadId)) || holding(leadId)) return;
    waiting.delete(String(leadId));
    refreshCard(leadId);
  }

  function boardFilters() {
    const params = new URLSearchParams();
    new URLSearchParams(location.search).forEach((value, key) => {
      if (["query", "source", "owner", "stage"].includes(key) && value) params.set(key, value);
    });
    const text = params.toString();
    return text ? "?" + text : "";
  }

  function setColumnStats(stats) {
    if (!stats) return;
    columns().forEach((column) => {
      const row = stats[column.dataset.stageId];
      if (!row) return;
      column.querySelector("[data-count]").textContent = money.format(row.count);
      column.querySelector("[data-count-label]").textContent = row.count === 1 ? "lead" : "leads";
      column.querySelector("[data-total]").textContent = money.format(Math.round(parseFloat(row.value) || 0));
      const list = column.querySelector(".cards");
      const empty = list.querySelector(".empty");
      if (list.querySelector(".lead-card")) { if (empty) empty.remove(); }
      else if (!empty) {
        const li = document.createElement("li");
        li.className = "empty";
        li.textContent = "No leads here.";
        list.append(li);
      }
    });
  }

  const stageTime = (card) => Date.parse(card.querySelector("time[datetime]").getAttribute("datetime")) || 0;

  // Cards are ordered newest stage change first (then highest id), as the board's query does.
  function insertSorted(column, fresh) {
    const list = column.querySelector(".cards");
    const when = stageTime(fresh);
    const id = parseInt(fresh.dataset.leadId, 10);
    const later = Array.from(list.querySelectorAll(".lead-card")).find((c) => {
      const t = stageTime(c);
      return t < when || (t === when && parseInt(c.dataset.leadId, 10) < id);
    });
    const paging = column.querySelector(".column-paging");
    const onFirstPage = !paging || !Array.from(paging.querySelectorAll("a")).some((a) => /Previous/.test(a.textContent));
    const hasMore = Boolean(paging) && Array.from(paging.querySelectorAll("a")).some((a) => /Show more/.test(a.textContent));
    if (later) {
      if (later === list.querySelector(".lead-card") && !onFirstPage) return false;  // belongs on an earlier page
      later.before(fresh);
    } else {
      if (hasMore) return false;  // belongs on a later page
      list.append(fresh);
    }
    return true;
  }

  function removeCard(leadId) {
    const card = cardOf(leadId);
    if (card) card.remove();
  }

  async function refreshCard(leadId) {
    if (holding(leadId)) { waiting.set(String(leadId), true); return; }
    const ticket = ++requests;
    latest.set(String(leadId), ticket);
    let response, data = null;
    try {
      response = await fetch("/board/cards/" + leadId + "/" + boardFilters(), {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      if (response.status === 200 || response.status === 404) data = await response.json();
    } catch (err) { return; }
    if (latest.get(String(leadId)) !== ticket || !data) return;  // a newer request will answer
    if (holding(leadId)) { waiting.set(String(leadId), true); return; }
    const current = cardOf(leadId);
    const column = data.visible_in_filter
      ? board.querySelector('.column[data-stage-id="' + data.stage_id + '"]') : null;
    if (response.status === 404 || !column) {
      removeCard(leadId);
    } else {
      const template = document.createElement("template");
      template.innerHTML = data.card_html.trim();
      const fresh = template.content.firstElementChild;
      const hadFocus = current && document.activeElement === current;
      if (current && columnOf(current) === column) {
        current.replaceWith(fresh);
      } else {
        if (current) current.remove();
        if (insertSorted(column, fresh)) fresh.classList.add("just-moved");
      }
      if (hadFocus && fresh.isConnected) fresh.focus();
    }
    setColumnStats(data.columns);
  }

  // Even for a deletion the endpoint is asked: it answers 404 with the columns' new totals.
  document.addEventListener("leadboard:lead-event", (event) => refreshCard(event.detail.lead_id));

  // After the socket was away: reload the columns as the board shows them now.
  async function resync() {
    if (!handsFree() || board.contains(document.activeElement) && document.activeElement.matches("select, input, textarea")) {
      resyncWanted = true;
      return;
    }
    resyncWanted = false;
    let doc;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { Accept: "text/html" } });
      if (!response.ok) return;
      doc = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch (err) { return; }
    const fresh = doc.querySelector("[data-board]");
    if (!fresh) return;
    if (!handsFree()) { resyncWanted = true; return; }
    const focusedId = document.activeElement && document.activeElement.closest && document.activeElement.closest(".lead-card")
      ? document.activeElement.closest(".lead-card").id : null;
    board.replaceChildren(...Array.from(fresh.childNodes));
    waiting.clear();
    if (focusedId && document.getElementById(focusedId)) document.getElementById(focusedId).focus();
  }
  document.addEventListener("leadboard:resync", resync);
})();
