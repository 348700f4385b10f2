/* dozor service worker: keeps the page shell and the last known page per zone for offline use (network
   first for pages, so a live hub always wins), and shows pushed zone states as notifications. */
"use strict";
const SHELL = "dozor-shell-v2", PAGES = "dozor-pages-v1";
const SHELL_URLS = ["/static/app.js", "/favicon.ico", "/manifest.webmanifest"];
self.addEventListener("install", (e) => e.waitUntil(caches.open(SHELL).then((c) => c.addAll(SHELL_URLS)).then(() => self.skipWaiting())));
self.addEventListener("activate", (e) => e.waitUntil(
  caches.keys().then((ks) => Promise.all(ks.filter((k) => k !== SHELL && k !== PAGES).map((k) => caches.delete(k))))
    .then(() => self.clients.claim())));

async function page(req) {
  const cache = await caches.open(PAGES);
  try {
    const res = await fetch(req);
    if (res.ok) await cache.put(req.url, res.clone());
    return res;
  } catch (err) {  // offline or hub down: the last known page of this URL, else of any zone
    const hit = (await cache.match(req.url)) || (await cache.match(req, { ignoreSearch: true }));
    if (hit) return hit;
    const keys = await cache.keys();
    if (keys.length) return cache.match(keys[keys.length - 1]);
    throw err;
  }
}

self.addEventListener("fetch", (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== "GET" || url.origin !== self.location.origin || url.pathname.startsWith("/api/")) return;
  if (e.request.mode === "navigate") { e.respondWith(page(e.request)); return; }
  if (SHELL_URLS.includes(url.pathname)) {
    e.respondWith(fetch(e.request).then((r) => { const c = r.clone(); caches.open(SHELL).then((s) => s.put(e.request, c)); return r; })
      .catch(() => caches.match(e.request)));
  }
});

async function handlePush(msg) {
  const lang = (msg && msg.lang) || "uk";
  const all = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const c of all) c.postMessage({ type: "push", state: msg });
  if (!msg || !msg.zone) {
    return self.registration.showNotification("dozor", { body: "Перевірте стан тривоги / Check alert status", tag: "dozor" });
  }
  const headline = (msg.headline && (msg.headline[lang] || msg.headline.uk || msg.headline.en)) || "dozor";
  const body = (msg.instruction && (msg.instruction[lang] || msg.instruction.uk)) || "";
  return self.registration.showNotification(headline, {
    body, tag: "zone-" + msg.zone, renotify: true,
    requireInteraction: msg.status === "active",
    data: { url: "/?zone=" + encodeURIComponent(msg.zone), version: msg.version },
  });
}

self.addEventListener("push", (event) => {
  let msg = null;
  try { msg = event.data ? event.data.json() : null; } catch (err) { msg = null; }
  event.waitUntil(handlePush(msg));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/";
  event.waitUntil(self.clients.openWindow(url));
});
