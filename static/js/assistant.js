// The assistant's chat form: after an answer is appended, clear the question,
// drop the hint and scroll to the answer. (Was an hx-on attribute; htmx runs
// those with eval, which the Content-Security-Policy forbids.)
document.addEventListener("htmx:afterRequest", function (event) {
  var form = event.target;
  if (!form.classList || !form.classList.contains("chat-form") || !event.detail.successful) return;
  form.reset();
  var log = document.getElementById(form.dataset.log);
  if (!log) return;
  var hint = log.querySelector(".chat-hint");
  if (hint) hint.remove();
  log.scrollTop = log.scrollHeight;
});
