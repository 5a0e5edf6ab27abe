// The console's few live parts: the broadcast composer's counters and forecast, the test
// send, and the progress page's refresh. A file, not inline: the CSP refuses inline script.
(function () {
  "use strict";
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const $ = (id) => document.getElementById(id);

  async function post(url, data) {
    const response = await fetch(url, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf},
      body: JSON.stringify(data),
      credentials: "same-origin",
    });
    return [response.ok, await response.json()];
  }

  const composer = $("composer");
  if (composer) {
    let timer = null;
    const fields = () => {
      const f = new FormData(composer);
      return {body: f.get("body") || "", audience: f.get("audience"), campaign: f.get("campaign"),
              tag: f.get("tag"), send_at: f.get("send_at") || ""};
    };
    async function refresh() {
      const [ok, d] = await post(composer.dataset.estimate, fields());
      $("f-error").hidden = ok;
      if (!ok) { $("f-error").textContent = d.error; return; }
      const plural = d.segments === 1 ? "" : "s";
      $("counter").textContent = d.chars + " characters · " + d.segments + " segment" + plural +
        " (" + d.encoding + ")" + (d.too_long ? " · too long: 1600 at most" : "");
      $("gsm-warning").hidden = !d.warning;
      $("gsm-warning").textContent = d.warning || "";
      $("gsm-offer").hidden = !d.gsm_safe_body;
      $("gsm-safe").textContent = d.gsm_safe_body ?
        d.gsm_safe_segments + " segment(s): " + d.gsm_safe_body : "";
      $("apply-gsm").dataset.text = d.gsm_safe_body || "";
      $("f-audience").textContent = d.audience;
      $("f-capped").textContent = d.capped + (d.unplaceable ? " (+" + d.unplaceable + " unplaceable)" : "");
      $("f-deferred").textContent = d.deferred + (d.deferred_until ? " until " + d.deferred_until : "");
      $("f-sends").textContent = d.sends + " at " + d.send_at;
      $("f-cost").textContent = "$" + d.cost;
      $("f-minutes").textContent = d.minutes + " min";
    }
    const later = () => { clearTimeout(timer); timer = setTimeout(refresh, 250); };
    composer.addEventListener("input", later);
    composer.addEventListener("change", later);
    $("apply-gsm").addEventListener("click", () => { $("body").value = $("apply-gsm").dataset.text; refresh(); });
    // The test send is a form post, so the limiter counts it like any form.
    if ($("test-send")) $("test-send").addEventListener("click", async () => {
      const form = new FormData();
      form.set("csrf_token", csrf);
      form.set("body", $("body").value);
      const response = await fetch(composer.dataset.test, {method: "POST", body: form, credentials: "same-origin"});
      const d = await response.json().catch(() => ({error: "the server answered " + response.status}));
      $("test-result").textContent = response.ok ? "Test text queued for " + d.to : (d.error || "refused");
    });
    refresh();
  }

  const progress = $("progress");
  if (progress && progress.dataset.done !== "1") {
    const set = (id, text) => { const el = $(id); if (el) el.textContent = text; };
    async function poll() {
      const response = await fetch(progress.dataset.url, {credentials: "same-origin"});
      if (!response.ok) return;
      const d = await response.json();
      set("p-status", d.status);
      const r = d.run;
      if (r) {
        const c = r.counts;
        set("p-planned", r.planned); set("p-sent", c.sent); set("p-delivered", r.delivered);
        set("p-pending", c.pending); set("p-sending", c.sending); set("p-failed", c.failed);
        const reasons = Object.entries(r.skipped).map(([k, v]) => k + " " + v).join(", ");
        set("p-skipped", c.skipped + (reasons ? " (" + reasons + ")" : ""));
        set("p-deferred", c.deferred + (r.deferred_until ? " until " + r.deferred_until : ""));
        set("p-undelivered", r.undelivered); set("p-eta", r.eta_seconds + " s");
        const bar = $("p-bar");
        bar.max = r.planned || 1; bar.value = c.sent + c.failed + c.skipped;
      }
      set("p-optouts", d.opt_outs + " (" + d.opt_out_rate + ")");
      if (!d.can_cancel && $("cancel-form")) $("cancel-form").hidden = true;
      if (!d.done) setTimeout(poll, 1500);
    }
    setTimeout(poll, 1000);
  }

  // An import's progress: refresh the bar, reload the page once for the report.
  const job = $("import");
  if (job && !["finished", "failed"].includes(job.dataset.status)) {
    async function follow() {
      const response = await fetch(job.dataset.url, {credentials: "same-origin"});
      if (!response.ok) return;
      const d = await response.json();
      $("i-status").textContent = d.status;
      $("i-bar").max = d.total || 1; $("i-bar").value = d.done;
      if (d.status === "finished" || d.status === "failed") { location.reload(); return; }
      setTimeout(follow, 1000);
    }
    setTimeout(follow, 500);
  }
})();
