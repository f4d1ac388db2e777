// The floor of the stack: a Worker that only forwards a request to the stand-in and hands back
// its answer. bench/e2e.py --floor-only measures webhooks against it under wrangler dev.
export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/healthz") return new Response("ok");
    return fetch(env.TARGET + url.pathname + url.search, {
      method: request.method,
      headers: request.headers,
      body: request.body,
    });
  },
};
