// The phone simulator page: sends a text and redraws the thread (a file: the CSP refuses
// inline script).
(function () {
  const form = document.getElementById("compose");
  const thread = document.getElementById("thread");
  const number = document.getElementById("number");
  const body = document.getElementById("body");
  const button = document.getElementById("send");
  const error = document.getElementById("error");
  const status = document.getElementById("status");

  function render(bubbles) {
    thread.replaceChildren();
    for (const b of bubbles) {
      const div = document.createElement("div");
      div.className = "bubble " + b.direction;
      div.textContent = b.body;
      const meta = document.createElement("span");
      meta.className = "meta";
      meta.textContent = b.at + (b.note ? " · " + b.note : "");
      div.appendChild(meta);
      thread.appendChild(div);
    }
    thread.scrollTop = thread.scrollHeight;
  }

  thread.scrollTop = thread.scrollHeight;
  body.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });
  form.addEventListener("submit", async function (e) {
    e.preventDefault();
    error.textContent = "";
    button.disabled = true;
    try {
      const response = await fetch(form.action, {
        method: "POST",
        headers: {
          "Content-Type": "application/json",
          "X-CSRFToken": document.querySelector('meta[name="csrf-token"]').content,
        },
        body: JSON.stringify({number: number.value, body: body.value}),
      });
      const data = await response.json();
      if (!response.ok) { error.textContent = data.error || "Could not send"; return; }
      if (data.webhook_status !== 200) {
        error.textContent = "The webhook answered " + data.webhook_status;
      }
      number.value = data.number;
      status.textContent = data.subscriber_status;
      history.replaceState(null, "", "?number=" + encodeURIComponent(data.number));
      render(data.conversation);
      body.value = "";
    } catch (err) {
      error.textContent = "Could not reach the server: " + err;
    } finally {
      button.disabled = false;
      body.focus();
    }
  });
})();
