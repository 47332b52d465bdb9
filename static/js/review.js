/* Marrow-Find review screen: image view toggles and keyboard shortcuts.
 *
 *   n / p      next / previous image (also j / k)
 *   1..9       record the n-th class for the focused image
 *   c          confirm the AI label of the focused image
 *   m          jump to the comment box (Esc leaves it)
 *   o / g / s  original / Grad-CAM / segmentation view of the focused image
 *
 * Shortcuts never fire while a text field has focus (a comment box, any
 * text-like input, a select, anything contenteditable): there every key is
 * text. Esc leaves the field.
 *
 * Saving keeps the reviewer's place: a saved card is swapped in where it
 * was, and the focus moves on to the next image still needing review. A
 * comment typed into a card while its save was on its way (a number key,
 * then straight into the comment box) is put back into the swapped-in card,
 * with the cursor where it was, and the focus stays there.
 *
 * Everything works without this file too (plain forms); it only saves
 * clicks. Events are delegated from the document so cards that htmx swaps
 * in after a review keep working.
 */
(function () {
  "use strict";

  function cards() {
    return Array.prototype.slice.call(document.querySelectorAll(".rv-card"));
  }

  var focusedId = null;

  /* Input types that take no typed text: a shortcut may fire while one has focus. */
  var NON_TEXT_INPUTS = ["radio", "checkbox", "button", "submit", "reset", "image", "range", "color", "file"];

  function isTextField(el) {
    if (!el || el === document.body) return false;
    if (el.isContentEditable) return true;
    var tag = el.tagName;
    if (tag === "TEXTAREA" || tag === "SELECT") return true;
    if (tag === "INPUT") return NON_TEXT_INPUTS.indexOf((el.type || "text").toLowerCase()) === -1;
    return false;
  }

  /* Comments typed into a card after its form was sent, by card id. */
  var sentComments = {};
  var pendingDrafts = {};

  function focusCard(card, scroll) {
    if (!card) return;
    cards().forEach(function (c) { c.classList.remove("focused"); });
    card.classList.add("focused");
    focusedId = card.id;
    if (scroll !== false) {
      card.scrollIntoView({ block: "nearest", behavior: "smooth" });
    }
  }

  function currentCard() {
    var card = focusedId && document.getElementById(focusedId);
    if (card) return card;
    var first = cards()[0];
    if (first) focusCard(first, false);
    return first || null;
  }

  function move(step) {
    var list = cards();
    if (!list.length) return;
    var index = list.indexOf(currentCard());
    var next = list[Math.min(list.length - 1, Math.max(0, index + step))];
    focusCard(next);
  }

  /* After a review lands, move on to the next image still needing review. */
  function advanceFrom(card) {
    var list = cards();
    var index = list.indexOf(card);
    for (var i = index + 1; i < list.length; i++) {
      if (!list[i].classList.contains("is-reviewed") && list[i].querySelector("form.rv-form")) {
        focusCard(list[i]);
        return;
      }
    }
    if (index + 1 < list.length) focusCard(list[index + 1]);
  }

  function setView(card, view) {
    var img = card && card.querySelector(".rv-view img");
    if (!img) return;
    var url = img.getAttribute("data-view-" + view);
    if (!url) return;
    img.src = url;
    card.querySelectorAll(".rv-toggle button").forEach(function (b) {
      b.setAttribute("aria-pressed", b.getAttribute("data-view") === view ? "true" : "false");
    });
  }

  function submitLabel(card, index) {
    var form = card && card.querySelector("form.rv-form");
    if (!form) return;
    var radios = form.querySelectorAll("input[name=label]");
    if (index < 1 || index > radios.length) return;
    radios[index - 1].checked = true;
    form.requestSubmit(form.querySelector("[data-role=save]"));
  }

  function confirmAI(card) {
    var form = card && card.querySelector("form.rv-form");
    if (!form) return;
    form.requestSubmit(form.querySelector("[data-role=confirm]"));
  }

  document.addEventListener("click", function (event) {
    var toggle = event.target.closest(".rv-toggle button[data-view]");
    if (toggle) {
      var card = toggle.closest(".rv-card");
      setView(card, toggle.getAttribute("data-view"));
      focusCard(card, false);
      return;
    }
    var card2 = event.target.closest(".rv-card");
    if (card2) focusCard(card2, false);
  });

  document.addEventListener("keydown", function (event) {
    if (!document.querySelector("[data-review-gallery]")) return;
    if (event.ctrlKey || event.metaKey || event.altKey || event.isComposing) return;
    var target = isTextField(event.target) ? event.target : (isTextField(document.activeElement) ? document.activeElement : null);
    if (target) {
      if (event.key === "Escape") target.blur();
      return;
    }
    var key = event.key;
    var card = currentCard();
    if (key === "n" || key === "j") { move(1); event.preventDefault(); }
    else if (key === "p" || key === "k") { move(-1); event.preventDefault(); }
    else if (/^[1-9]$/.test(key)) { submitLabel(card, parseInt(key, 10)); event.preventDefault(); }
    else if (key === "c") { confirmAI(card); event.preventDefault(); }
    else if (key === "m") {
      var box = card && card.querySelector("textarea[name=comment]");
      if (box) { box.focus(); event.preventDefault(); }
    }
    else if (key === "o") { setView(card, "original"); }
    else if (key === "g") { setView(card, "cam"); }
    else if (key === "s") { setView(card, "segmentation"); }
  });

  /* A review form is on its way: remember the comment it carries. */
  document.addEventListener("htmx:beforeRequest", function (event) {
    var form = event.detail && event.detail.elt;
    var card = form && form.closest && form.closest(".rv-card");
    var box = card && card.querySelector("textarea[name=comment]");
    if (card && box) sentComments[card.id] = box.value;
  });

  /* Just before the card is replaced: keep what was typed after the form was sent. */
  document.addEventListener("htmx:beforeSwap", function (event) {
    var card = event.detail && event.detail.target;
    if (!card || !card.classList || !card.classList.contains("rv-card")) return;
    var box = card.querySelector("textarea[name=comment]");
    if (!box) return;
    var focused = document.activeElement === box;
    var sent = sentComments[card.id];
    delete sentComments[card.id];
    if (box.value !== (sent === undefined ? "" : sent) && box.value !== "") {
      pendingDrafts[card.id] = { value: box.value, focused: focused, start: box.selectionStart, end: box.selectionEnd };
    } else if (focused) {
      pendingDrafts[card.id] = { value: null, focused: true };
    }
  });

  /* htmx swapped a reviewed card in where it was: put back an unsent comment
     (the reviewer is typing: stay), else move on to the next image. */
  document.addEventListener("htmx:afterSwap", function (event) {
    var card = event.detail && event.detail.target;
    if (!card || !card.classList) return;
    var swapped = card.id ? document.getElementById(card.id) : null;
    if (!swapped || !swapped.classList.contains("rv-card")) return;
    var draft = pendingDrafts[swapped.id];
    delete pendingDrafts[swapped.id];
    var box = swapped.querySelector("textarea[name=comment]");
    if (draft && box) {
      if (draft.value !== null) {
        box.value = draft.value;
        swapped.classList.add("has-draft");
        box.setAttribute("title", "Not saved yet: press Save or Update");
      }
      focusCard(swapped, false);
      if (draft.focused) {
        box.focus({ preventScroll: true });
        if (draft.value !== null && typeof draft.start === "number") box.setSelectionRange(draft.start, draft.end);
      }
      return;
    }
    if (swapped.querySelector(".card-error")) { focusCard(swapped, false); return; }
    advanceFrom(swapped);
  });

  document.addEventListener("DOMContentLoaded", function () {
    var hash = window.location.hash && document.querySelector(window.location.hash + ".rv-card");
    var firstOpen = cards().filter(function (c) { return !c.classList.contains("is-reviewed"); })[0];
    focusCard(hash || firstOpen || cards()[0], Boolean(hash));
  });
})();
