#!/usr/bin/env node
// The container health check (Dockerfile HEALTHCHECK, docker-compose.yml): exits 0 when the URL
// answers 2xx within the timeout, 1 otherwise. Plain Node (the image has no curl or wget), bounded
// so a hung process reads as unhealthy rather than as a hung check.
//   node scripts/healthcheck.mjs http://127.0.0.1:8000/health/ready
//   node scripts/healthcheck.mjs http://127.0.0.1:9464/metrics          # a worker
const TIMEOUT_MS = 3000;
const url = process.argv[2] ?? 'http://127.0.0.1:8000/health/ready';

try {
  const response = await fetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
  await response.body?.cancel();
  if (!response.ok) console.error(`${url}: ${response.status}`);
  process.exit(response.ok ? 0 : 1);
} catch (err) {
  console.error(`${url}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
