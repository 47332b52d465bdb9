/* Marrow-Find cell gallery: select cells, reclassify them by key or by drag and drop,
 * add a missed cell by clicking on its image.
 *
 *   click            select one cell (Ctrl/Cmd-click: add or remove, Shift-click: a range)
 *   arrows, j / k    move the focus; Space selects the focused cell; Esc clears
 *   1..9, 0, x       give the selection (else the focused cell) that class (see the page)
 *   drag             drop the selection onto a class
 *
 * Shortcuts never fire while a text field, a select or an editable area has focus.
 * Each change is one POST with a fresh submission token and the version of every
 * cell the page shows; changes are sent one after the other, so each carries the
 * versions the previous one returned. A 409 (another page changed a cell first)
 * leaves the page as it is and says so.
 */
(function () {
  "use strict";

  var page = document.getElementById("cell-gallery-page");
  if (!page) return;
  var editable = page.hasAttribute("data-editable");
  var statusBox = document.getElementById("cell-status");
  var csrfInput = page.querySelector("input[name=csrfmiddlewaretoken]");
  var csrf = csrfInput ? csrfInput.value : "";
  var keyToLabel = {};
  document.querySelectorAll("[data-drop-label][data-key]").forEach(function (section) {
    keyToLabel[section.getAttribute("data-key")] = section.getAttribute("data-drop-label");
  });

  var selected = new Set();
  var focusedId = null;
  var anchorId = null;
  var queue = Promise.resolve();

  function allCells() {
    return Array.prototype.slice.call(document.querySelectorAll("#cell-gallery .cg-cell"));
  }
  function cellEl(id) { return document.getElementById("cell-" + id); }
  function markerEl(id) { return document.getElementById("marker-" + id); }

  function say(text, kind) {
    if (!statusBox) return;
    statusBox.textContent = text;
    statusBox.className = "cg-status" + (kind ? " " + kind : "");
  }

  function uuid4() {
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return h.slice(0, 8) + "-" + h.slice(8, 12) + "-" + h.slice(12, 16) + "-" + h.slice(16, 20) + "-" + h.slice(20);
  }

  function isTyping(target) {
    if (!target || !target.tagName) return false;
    if (target.isContentEditable) return true;
    var tag = target.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") {
      var type = (target.type || "text").toLowerCase();
      return ["checkbox", "radio", "button", "submit", "reset", "range", "color", "file"].indexOf(type) === -1;
    }
    return false;
  }

  // --- selection and focus -------------------------------------------------------

  function paintSelection() {
    allCells().forEach(function (el) {
      var on = selected.has(el.getAttribute("data-cell"));
      el.classList.toggle("selected", on);
      el.setAttribute("aria-selected", on ? "true" : "false");
    });
    document.querySelectorAll(".cg-markers .mk").forEach(function (mk) {
      mk.classList.toggle("selected", selected.has(mk.getAttribute("data-cell")));
    });
    if (selected.size) say(selected.size + " cell(s) selected: press a class key or drag them onto a class.");
  }

  function focusCell(el, scroll) {
    if (!el) return;
    allCells().forEach(function (c) { c.classList.remove("focused"); });
    el.classList.add("focused");
    focusedId = el.getAttribute("data-cell");
    el.focus({ preventScroll: true });
    if (scroll !== false) el.scrollIntoView({ block: "nearest" });
  }

  function focusedCell() {
    var el = focusedId && cellEl(focusedId);
    if (el) return el;
    el = allCells()[0] || null;
    if (el) focusCell(el, false);
    return el;
  }

  function selectCell(el, mode) {
    var id = el.getAttribute("data-cell");
    if (mode === "toggle") {
      if (selected.has(id)) selected.delete(id); else selected.add(id);
      anchorId = id;
    } else if (mode === "range" && anchorId && cellEl(anchorId)) {
      var list = allCells();
      var a = list.indexOf(cellEl(anchorId));
      var b = list.indexOf(el);
      selected.clear();
      list.slice(Math.min(a, b), Math.max(a, b) + 1).forEach(function (c) { selected.add(c.getAttribute("data-cell")); });
    } else {
      selected.clear();
      selected.add(id);
      anchorId = id;
    }
    paintSelection();
  }

  function clearSelection() {
    selected.clear();
    paintSelection();
    say("");
  }

  function move(step) {
    var list = allCells();
    if (!list.length) return;
    var i = list.indexOf(focusedCell());
    focusCell(list[Math.min(list.length - 1, Math.max(0, i + step))]);
  }

  function targets() {
    if (selected.size) return Array.from(selected);
    var el = focusedCell();
    return el ? [el.getAttribute("data-cell")] : [];
  }

  // --- talking to the server ----------------------------------------------------

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf },
      body: JSON.stringify(body),
    }).then(function (response) {
      return response.json().catch(function () { return { error: "The server answered " + response.status + "." }; })
        .then(function (data) { return { status: response.status, data: data }; });
    });
  }

  function enqueue(job) {
    queue = queue.then(job).catch(function (err) { say("Not saved: " + err, "error"); });
    return queue;
  }

  function updateCounts() {
    document.querySelectorAll("#cell-gallery .cg-group").forEach(function (section) {
      var badge = section.querySelector("[data-count]");
      var n = section.querySelectorAll(".cg-cell").length;
      if (badge) badge.textContent = n;
      section.classList.toggle("is-empty", n === 0);
    });
  }

  function newCellElement(cell) {
    var tpl = document.getElementById("cell-template");
    var el = tpl.content.firstElementChild.cloneNode(true);
    el.id = "cell-" + cell.id;
    el.setAttribute("data-cell", cell.id);
    el.setAttribute("data-image", cell.image);
    el.querySelector("img").src = cell.crop;
    el.querySelector("img").alt = "Cell " + cell.index + " of image " + cell.position;
    el.querySelector(".where").textContent = "#" + cell.position + "·" + cell.index;
    return el;
  }

  function newMarker(cell) {
    var svg = document.querySelector(".cg-image[data-image='" + cell.image + "'] svg");
    if (!svg) return;
    var rect = document.createElementNS("http://www.w3.org/2000/svg", "rect");
    rect.id = "marker-" + cell.id;
    rect.setAttribute("data-cell", cell.id);
    rect.setAttribute("x", cell.bbox[0]);
    rect.setAttribute("y", cell.bbox[1]);
    rect.setAttribute("width", cell.bbox[2] - cell.bbox[0]);
    rect.setAttribute("height", cell.bbox[3] - cell.bbox[1]);
    var title = document.createElementNS("http://www.w3.org/2000/svg", "title");
    title.textContent = "cell " + cell.index + ": " + (cell.label || "unidentified");
    rect.appendChild(title);
    svg.appendChild(rect);
  }

  /* Put each returned cell where the server says it now is; keep the reviewer's place. */
  function applyCells(cells) {
    var moved = new Set(cells.map(function (c) { return String(c.id); }));
    var list = allCells();
    var here = focusedCell();
    var next = null;
    if (here && moved.has(here.getAttribute("data-cell"))) {
      var i = list.indexOf(here);
      next = list.slice(i + 1).concat(list.slice(0, i).reverse()).filter(function (c) {
        return !moved.has(c.getAttribute("data-cell"));
      })[0] || null;
    }
    cells.forEach(function (cell) {
      var el = cellEl(cell.id);
      if (!el) { el = newCellElement(cell); newMarker(cell); }
      el.setAttribute("data-version", cell.version);
      el.setAttribute("data-label", cell.label);
      el.classList.add("is-decided");
      var target = document.querySelector("#cells-" + cell.group + " .cg-cells");
      if (target && el.parentNode !== target) target.appendChild(el);
      var mk = markerEl(cell.id);
      if (mk) {
        mk.setAttribute("class", "mk lbl-" + cell.label);
        var t = mk.querySelector("title");
        if (t) t.textContent = "cell " + cell.index + ": " + (cell.label || "unidentified");
      }
    });
    updateCounts();
    selected.clear();
    paintSelection();
    if (next) focusCell(next);
    document.body.dispatchEvent(new CustomEvent("cells-changed", { bubbles: true }));
  }

  function handle(result) {
    if (result.status === 200) {
      applyCells(result.data.cells || []);
      say(result.data.message || "Saved.", "ok");
    } else {
      say(result.data.error || ("Not saved (" + result.status + ")."), "error");
    }
    return result;
  }

  function reclassify(ids, label) {
    if (!editable || !ids.length || !label) return;
    return enqueue(function () {
      var cells = ids.map(function (id) {
        var el = cellEl(id);
        return { id: Number(id), version: Number(el ? el.getAttribute("data-version") : 0) };
      });
      return post(page.getAttribute("data-reclassify-url"), { label: label, token: uuid4(), cells: cells }).then(handle);
    });
  }

  // --- clicks -------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    var cell = event.target.closest("#cell-gallery .cg-cell");
    if (cell) {
      selectCell(cell, event.shiftKey ? "range" : (event.ctrlKey || event.metaKey) ? "toggle" : "only");
      focusCell(cell, false);
      return;
    }
    var marker = event.target.closest(".cg-markers .mk");
    if (marker) {
      var el = cellEl(marker.getAttribute("data-cell"));
      if (el) { selectCell(el, (event.ctrlKey || event.metaKey) ? "toggle" : "only"); focusCell(el, false); }
      return;
    }
    var svg = event.target.closest(".cg-markers.can-add");
    if (svg && editable) openAddForm(svg, event);
  });

  // --- keyboard -----------------------------------------------------------------

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (isTyping(event.target)) {
      if (event.key === "Escape" && event.target.closest("#add-cell-form")) closeAddForm();
      return;
    }
    var key = event.key;
    if (key === "ArrowRight" || key === "ArrowDown" || key === "j") { move(1); event.preventDefault(); }
    else if (key === "ArrowLeft" || key === "ArrowUp" || key === "k") { move(-1); event.preventDefault(); }
    else if (key === " ") {
      var el = focusedCell();
      if (el) { selectCell(el, "toggle"); event.preventDefault(); }
    }
    else if (key === "Escape") { clearSelection(); closeAddForm(); }
    else if (editable && Object.prototype.hasOwnProperty.call(keyToLabel, key.toLowerCase())) {
      reclassify(targets(), keyToLabel[key.toLowerCase()]);
      event.preventDefault();
    }
  });

  // --- drag and drop ------------------------------------------------------------

  document.addEventListener("dragstart", function (event) {
    var cell = event.target.closest && event.target.closest("#cell-gallery .cg-cell");
    if (!cell || !editable) return;
    if (!selected.has(cell.getAttribute("data-cell"))) selectCell(cell, "only");
    focusCell(cell, false);
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", Array.from(selected).join(","));
    allCells().forEach(function (c) { if (selected.has(c.getAttribute("data-cell"))) c.classList.add("dragging"); });
  });

  document.addEventListener("dragend", function () {
    allCells().forEach(function (c) { c.classList.remove("dragging"); });
    document.querySelectorAll(".drop-over").forEach(function (s) { s.classList.remove("drop-over"); });
  });

  document.addEventListener("dragover", function (event) {
    var section = event.target.closest && event.target.closest("[data-drop-label]");
    if (!section) return;
    event.preventDefault();
    event.dataTransfer.dropEffect = "move";
    document.querySelectorAll(".drop-over").forEach(function (s) { if (s !== section) s.classList.remove("drop-over"); });
    section.classList.add("drop-over");
  });

  document.addEventListener("drop", function (event) {
    var section = event.target.closest && event.target.closest("[data-drop-label]");
    if (!section) return;
    event.preventDefault();
    section.classList.remove("drop-over");
    var ids = selected.size ? Array.from(selected)
      : (event.dataTransfer.getData("text/plain") || "").split(",").filter(Boolean);
    reclassify(ids, section.getAttribute("data-drop-label"));
  });

  // --- adding a missed cell -----------------------------------------------------

  var addForm = document.getElementById("add-cell-form");
  var pending = null; // {image, x, y, marker}

  function closeAddForm() {
    if (!addForm) return;
    addForm.hidden = true;
    if (pending && pending.marker) pending.marker.remove();
    pending = null;
  }

  function openAddForm(svg, event) {
    if (!addForm) return;
    closeAddForm();
    var figure = svg.closest(".cg-image");
    var box = svg.getBoundingClientRect();
    var width = Number(figure.getAttribute("data-width"));
    var height = Number(figure.getAttribute("data-height"));
    var x = (event.clientX - box.left) / box.width * width;
    var y = (event.clientY - box.top) / box.height * height;
    var mark = document.createElementNS("http://www.w3.org/2000/svg", "circle");
    mark.setAttribute("class", "mk pending");
    mark.setAttribute("cx", x);
    mark.setAttribute("cy", y);
    mark.setAttribute("r", Math.max(6, Math.min(width, height) / 40));
    svg.appendChild(mark);
    pending = { image: Number(figure.getAttribute("data-image")), x: x, y: y, marker: mark };
    var stage = svg.parentNode;
    stage.appendChild(addForm);
    addForm.style.left = Math.min(event.clientX - box.left + 8, Math.max(0, box.width - 260)) + "px";
    addForm.style.top = (event.clientY - box.top + 8) + "px";
    addForm.querySelector("[data-where]").textContent =
      "Add a missed cell on image #" + figure.getAttribute("data-position") + " at (" + Math.round(x) + ", " + Math.round(y) + ")";
    addForm.hidden = false;
    addForm.querySelector("select").focus();
  }

  if (addForm) {
    addForm.addEventListener("submit", function (event) {
      event.preventDefault();
      if (!pending) return;
      var body = { image: pending.image, x: pending.x, y: pending.y, label: addForm.querySelector("select").value, token: uuid4() };
      closeAddForm();
      enqueue(function () { return post(page.getAttribute("data-add-url"), body).then(handle); });
    });
    addForm.querySelector("[data-cancel]").addEventListener("click", function (event) {
      event.stopPropagation();
      closeAddForm();
    });
    addForm.addEventListener("click", function (event) { event.stopPropagation(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var first = document.querySelector("#cells-Unidentified .cg-cell") || allCells()[0];
    if (first) focusCell(first, false);
  });
})();
