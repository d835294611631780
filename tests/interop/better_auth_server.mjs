// Runs the real better-auth package on 127.0.0.1 for the interop tests (tests/test_better_auth.py).
//
// Environment: BA_ALG (EdDSA | ES256 | RS256 | PS256), BA_PORT (0 = any free port),
// BA_SECRET, BA_ROTATION_SECONDS (optional: Better Auth's own key rotation interval),
// BA_EXPIRES (optional: token lifetime, e.g. "2s"; Better Auth's default is 15 minutes).
// Prints one JSON line {"ready": true, "url", "jwks_url", "alg"} once listening.
//
// Besides Better Auth's routes, two test-only switches simulate an outage:
// POST /test/outage makes every request answer 503 until POST /test/recover.
import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const alg = process.env.BA_ALG ?? "EdDSA";
const port = Number(process.env.BA_PORT ?? 0);
const rotation = process.env.BA_ROTATION_SECONDS ? Number(process.env.BA_ROTATION_SECONDS) : undefined;

const server = http.createServer();
server.listen(port, "127.0.0.1", () => {
  const baseURL = `http://127.0.0.1:${server.address().port}`;
  const db = { user: [], session: [], account: [], verification: [], jwks: [] };
  const auth = betterAuth({
    baseURL,
    secret: process.env.BA_SECRET ?? "interop-secret-0123456789abcdef0123456789abcdef",
    database: memoryAdapter(db),
    emailAndPassword: { enabled: true },
    plugins: [
      jwt({
        jwks: { keyPairConfig: { alg }, rotationInterval: rotation, gracePeriod: 3600 },
        jwt: process.env.BA_EXPIRES ? { expirationTime: process.env.BA_EXPIRES } : {},
      }),
    ],
    logger: { disabled: true },
  });
  const handle = toNodeHandler(auth);
  let down = false;
  server.on("request", (req, res) => {
    if (req.method === "POST" && req.url === "/test/outage") down = true;
    if (req.method === "POST" && req.url === "/test/recover") down = false;
    if (req.url.startsWith("/test/")) return res.writeHead(204).end();
    if (down) return res.writeHead(503).end();
    return handle(req, res);
  });
  console.log(JSON.stringify({ ready: true, url: baseURL, jwks_url: `${baseURL}/api/auth/jwks`, alg }));
});

for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => server.close(() => process.exit(0)));
