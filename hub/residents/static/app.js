/* dozor resident page. The server renders the state; this script only keeps it live (SSE: full state on
   connect, then every change and a heartbeat), says how fresh it is, caches the last known page for offline
   use, marks "you are here" on the map, and subscribes to Web Push. */
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const D = JSON.parse($("dozor-data").textContent);
  const T = D.i18n, HB = D.heartbeat * 1000, CACHE = "dozor-pages-v1";
  const seen = (window.dozorSeen = [{ version: D.version, status: D.status, mode: D.mode }]);
  // last contact: when the server rendered this page (or, for a page the service worker kept, last saw news)
  let last = Math.min(Date.now(), D.rendered * 1000), live = false, es = null, retry = 1000, timer = null;

  function cookie(k, v) { document.cookie = k + "=" + encodeURIComponent(v) + "; path=/; max-age=31536000; samesite=lax"; }
  cookie("dozor_zone", D.zone); cookie("dozor_lang", D.lang); cookie("dozor_tester", D.tester ? "1" : "0");
  const hm = (ms) => new Date(ms).toLocaleTimeString(D.lang === "uk" ? "uk-UA" : "en-GB", { hour: "2-digit", minute: "2-digit", timeZone: D.tz });

  function fresh() {
    const age = Date.now() - last, box = $("lost"), f = $("fresh");
    const mins = Math.floor(age / 60000);
    if (!navigator.onLine) {
      box.textContent = T.offline.replace("{t}", hm(last));
      box.hidden = false; box.dataset.kind = "offline"; f.dataset.state = "offline";
    } else if (!live || age > HB + 2000) {
      if (age > HB + 2000) {
        box.textContent = mins < 1 ? T.lost_now : T.lost.replace("{n}", mins);
        box.hidden = false; box.dataset.kind = "lost"; f.dataset.state = "lost";
      }
    } else {
      box.hidden = true; box.dataset.kind = ""; f.dataset.state = "live";
    }
    // an open stream that went quiet (a stalled proxy, a frozen hub): drop it and connect again
    if (navigator.onLine && es && es.readyState === EventSource.OPEN && age > 3 * HB) { live = false; connect(); }
    $("conn").textContent = "· " + (f.dataset.state === "live" ? T.live : mins < 1 ? T.just_now : T.ago.replace("{n}", mins));
    const dur = document.querySelector("#duration[data-live]");
    if (dur) {
      const m = Math.max(0, Math.round((Date.now() / 1000 - Number(dur.dataset.since)) / 60));
      dur.firstChild.textContent = (m >= 60 ? Math.floor(m / 60) + " " + T.h + " " + (m % 60) : m) + " " + T.min + " ";
    }
  }

  function touch() {
    last = Date.now(); live = true;
    const ft = $("fresh-time");
    ft.textContent = new Date(last).toLocaleTimeString(D.lang === "uk" ? "uk-UA" : "en-GB", { timeZone: D.tz });
    ft.setAttribute("datetime", new Date(last).toISOString());
    fresh();
  }

  function apply(s) {
    if (!s || s.zone !== D.zone) return;
    seen.push({ version: s.version, status: s.status, mode: s.mode });
    if (s.html && s.html[D.lang]) { $("live").innerHTML = s.html[D.lang]; locateButton(); if (pos) mark(); }
    D.version = s.version; D.status = s.status; D.mode = s.mode;
    touch();
    save();
  }

  function save() {  // the last known page, for an offline reload (the service worker serves it)
    if (!("caches" in window)) return;
    D.rendered = last / 1000;
    $("dozor-data").textContent = JSON.stringify(D).replace(/<\//g, "<\\/");
    const lost = $("lost"), hidden = lost.hidden;
    lost.hidden = true;
    const html = "<!doctype html>\n" + document.documentElement.outerHTML;
    lost.hidden = hidden;
    caches.open(CACHE).then((c) => c.put(location.href, new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } })))
      .catch(() => {});
  }

  function connect() {
    if (es) es.close();
    es = new EventSource("/api/v1/zones/" + encodeURIComponent(D.zone) + "/events" + (D.tester ? "?tester=1" : ""));
    es.addEventListener("open", () => { retry = 1000; });
    es.addEventListener("state", (ev) => { try { apply(JSON.parse(ev.data)); } catch (e) { /* keep the last good state */ } });
    es.addEventListener("heartbeat", touch);
    es.addEventListener("error", () => {
      live = false; fresh();
      if (es.readyState === EventSource.CLOSED) {  // the browser gave up: keep retrying ourselves
        clearTimeout(timer); timer = setTimeout(connect, retry); retry = Math.min(retry * 2, 30000);
      }
    });
  }

  // "use my location": mark it on the map, order the shelters by distance, switch zone when outside it
  let pos = null;
  function dist(a, b, c, d) {
    const r = Math.PI / 180, x = Math.sin((c - a) * r / 2) ** 2 + Math.cos(a * r) * Math.cos(c * r) * Math.sin((d - b) * r / 2) ** 2;
    return 12742018 * Math.asin(Math.min(1, Math.sqrt(x)));
  }
  function mark() {
    const m = $("map"), me = $("me");
    if (m && me) {
      const w = +m.dataset.west, e = +m.dataset.east, s = +m.dataset.south, n = +m.dataset.north;
      me.setAttribute("cx", ((pos.lon - w) / (e - w) * m.dataset.width).toFixed(1));
      me.setAttribute("cy", ((n - pos.lat) / (n - s) * m.dataset.height).toFixed(1));
      me.setAttribute("visibility", "visible");
      me.innerHTML = "<title>" + T.you + "</title>";
    }
    const list = $("shelter-list");
    if (!list) return;
    const items = [...list.children];
    for (const li of items) {
      const d = dist(pos.lat, pos.lon, +li.dataset.lat, +li.dataset.lon);
      li.dataset.distance = String(Math.round(d));
      li.querySelector(".dist").textContent = " · " + (d >= 1000 ? (d / 1000).toFixed(1) + " km" : Math.round(d) + " m");
    }
    items.sort((a, b) => a.dataset.distance - b.dataset.distance).forEach((li) => list.appendChild(li));
  }
  function locateButton() {
    const b = $("locate");
    if (!b || !navigator.geolocation) return;
    b.hidden = false;
    b.onclick = () => navigator.geolocation.getCurrentPosition(async (p) => {
      pos = { lat: p.coords.latitude, lon: p.coords.longitude };
      mark();
      try {
        const d = await (await fetch("/api/v1/residents/locate?lat=" + pos.lat + "&lon=" + pos.lon)).json();
        if (d.zone && d.zone !== D.zone) { location.href = "/?zone=" + encodeURIComponent(d.zone) + "&lang=" + D.lang + "&lat=" + pos.lat + "&lon=" + pos.lon; return; }
        $("locate-msg").textContent = d.zone ? T.you : T.outside;
      } catch (e) { $("locate-msg").textContent = T.you; }
    }, () => { $("locate-msg").textContent = T.geo_fail; }, { timeout: 10000, maximumAge: 300000 });
  }

  function b64(s) {
    const t = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
    return Uint8Array.from(t, (c) => c.charCodeAt(0));
  }
  async function subscribe() {
    const msg = $("push-msg");
    try {
      if ((await Notification.requestPermission()) !== "granted") { msg.textContent = T.push_denied; return; }
      const cfg = await (await fetch("/api/v1/residents/config")).json();
      const reg = await navigator.serviceWorker.ready;
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64(cfg.vapidPublicKey) });
      const r = await fetch("/api/v1/push/subscriptions", { method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ subscription: sub.toJSON(), zones: [D.zone], tester: D.tester, lang: D.lang }) });
      msg.textContent = r.ok ? T.push_ok : T.push_fail + r.status;
    } catch (e) { msg.textContent = T.push_fail + (e && e.message ? e.message : e); }
  }

  $("zone").addEventListener("change", () => $("zone").form.submit());
  $("tester").addEventListener("change", () => $("tester").form.submit());
  if (D.push && "PushManager" in window && "Notification" in window) { $("push-box").hidden = false; $("push").onclick = subscribe; }
  const q = new URLSearchParams(location.search);
  if (q.get("lat") && q.get("lon")) { pos = { lat: +q.get("lat"), lon: +q.get("lon") }; mark(); }
  locateButton();
  if ("serviceWorker" in navigator) {
    navigator.serviceWorker.register("/sw.js", { scope: "/" }).catch(() => {});
    navigator.serviceWorker.addEventListener("message", async (e) => {
      const d = e.data || {};
      document.body.dataset.lastPush = d.state ? String(d.state.version) : "";
      if (d.type !== "push" || !d.state || d.state.zone !== D.zone) return;
      try { apply(await (await fetch("/api/v1/zones/" + encodeURIComponent(D.zone) + "/state" + (D.tester ? "?tester=1" : ""))).json()); } catch (err) { /* the stream catches up */ }
    });
  }
  window.addEventListener("online", () => { fresh(); connect(); });
  window.addEventListener("offline", () => { live = false; fresh(); });
  setInterval(fresh, 1000);
  fresh();
  if (navigator.onLine) connect();
  document.body.dataset.ready = "1";
})();
