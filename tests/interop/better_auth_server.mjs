// Runs the real better-auth package on 127.0.0.1 for the interop tests (tests/support/better_auth.py).
// Plain ESM, no build step: `npm ci` here, then `node better_auth_server.mjs`.
//
// Better Auth setup: memory adapter, emailAndPassword, and the jwt plugin signing with BA_ALG.
// Its routes live under /api/auth: POST /sign-up/email, GET /token (needs the session cookie), GET /jwks.
//
// Environment (all optional):
//   BA_ALG               EdDSA (Ed25519, the default) | ES256 | RS256 | PS256; anything else exits with 2
//   BA_PORT              port to listen on; 0 (the default) picks a free one
//   BA_SECRET            Better Auth's secret (it encrypts the stored private keys); a fixed default is used
//   BA_ISSUER            jwt plugin's jwt.issuer   (unset: Better Auth's default, the baseURL)
//   BA_AUDIENCE          jwt plugin's jwt.audience (unset: Better Auth's default, the baseURL)
//   BA_EXPIRES           jwt plugin's jwt.expirationTime, e.g. "2s" (unset: Better Auth's default, 15m)
//   BA_ROTATION_SECONDS  jwt plugin's jwks.rotationInterval: Better Auth's own scheduled rotation
//                        (unset: keys never expire); retired keys stay in the JWKS for an hour
//
// Once listening it prints exactly one line to stdout, then nothing else (Better Auth's own warnings and
// errors go to stderr):
//   {"ready":true,"url":"http://127.0.0.1:PORT","jwks_url":"http://127.0.0.1:PORT/api/auth/jwks","alg":"..."}
// The first signing key is created before that line, so the JWKS holds exactly one key from the start.
// SIGTERM or SIGINT closes the server and exits with code 0.
//
// Test-only routes, not part of Better Auth; always answered, even during an outage:
//   GET  /test/page             a blank HTML page on this origin, for browser tests to run a frontend's calls in.
//   POST /test/rotate           creates a new signing key through the jwt plugin's own createJwk(). Tokens
//                               issued from then on carry the new kid; the previous keys STAY in the JWKS
//                               (as in Better Auth, which only drops a key gracePeriod after it expires).
//                               Answers 200 {"kid": NEW_KID, "kids": [every kid now in the JWKS]}.
//   POST /test/rotate?retire=1  the same, then deletes every other key from the database, so the JWKS
//                               holds the new key only (a retired key, or one whose grace period ended).
//   POST /test/outage           from now on every other request answers 503 with an empty body.
//   POST /test/recover          ends the outage. Both answer 200 {"down": true|false}.
import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { createJwk, jwt } from "better-auth/plugins";

const ALGS = ["EdDSA", "ES256", "RS256", "PS256"];
const env = process.env;
const alg = env.BA_ALG || "EdDSA";
if (!ALGS.includes(alg)) {
  console.error(`BA_ALG must be one of ${ALGS.join(", ")}, not ${JSON.stringify(alg)}`);
  process.exit(2);
}

const server = http.createServer();
server.listen(Number(env.BA_PORT || 0), "127.0.0.1", async () => {
  const url = `http://127.0.0.1:${server.address().port}`;
  const jwtOptions = {
    jwks: {
      keyPairConfig: { alg },
      ...(env.BA_ROTATION_SECONDS
        ? { rotationInterval: Number(env.BA_ROTATION_SECONDS), gracePeriod: 3600 }
        : {}),
    },
    jwt: {
      ...(env.BA_ISSUER ? { issuer: env.BA_ISSUER } : {}),
      ...(env.BA_AUDIENCE ? { audience: env.BA_AUDIENCE } : {}),
      ...(env.BA_EXPIRES ? { expirationTime: env.BA_EXPIRES } : {}),
    },
  };
  const auth = betterAuth({
    baseURL: url,
    secret: env.BA_SECRET || "interop-secret-0123456789abcdef0123456789abcdef",
    database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
    emailAndPassword: { enabled: true },
    plugins: [jwt(jwtOptions)],
    // Better Auth turns rate limiting on when NODE_ENV=production; tests sign up many users quickly.
    rateLimit: { enabled: false },
    telemetry: { enabled: false },
    logger: { level: "warn" },
  });
  const context = await auth.$context;
  const keys = () => context.adapter.findMany({ model: "jwks" });

  async function rotate(retire) {
    const key = await createJwk({ context }, jwtOptions);
    if (retire) {
      for (const old of await keys()) {
        if (old.id === key.id) continue;
        await context.adapter.delete({ model: "jwks", where: [{ field: "id", value: old.id }] });
      }
    }
    return { kid: key.id, kids: (await keys()).map((k) => k.id) };
  }

  await createJwk({ context }, jwtOptions);
  const handle = toNodeHandler(auth);
  let down = false;
  server.on("request", async (req, res) => {
    const { pathname, searchParams } = new URL(req.url, url);
    if (!pathname.startsWith("/test/")) {
      if (down) return res.writeHead(503).end();
      return handle(req, res);
    }
    const reply = (status, body) =>
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(body));
    if (pathname === "/test/page" && req.method === "GET") {
      // A blank page on Better Auth's origin, as a Next.js app serving /api/auth has: a browser test
      // runs the frontend's calls from it.
      return res.writeHead(200, { "content-type": "text/html" }).end("<!doctype html><title>app</title>");
    }
    if (req.method !== "POST") return reply(405, { error: "POST only" });
    if (pathname === "/test/outage" || pathname === "/test/recover") {
      down = pathname === "/test/outage";
      return reply(200, { down });
    }
    if (pathname === "/test/rotate") {
      try {
        return reply(200, await rotate(searchParams.get("retire") === "1"));
      } catch (error) {
        console.error(error);
        return reply(500, { error: String(error) });
      }
    }
    return reply(404, { error: "unknown test route" });
  });
  console.log(JSON.stringify({ ready: true, url, jwks_url: `${url}/api/auth/jwks`, alg }));
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
