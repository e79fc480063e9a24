// Sample CDE export in Node.js, standard library only (node:http; no npm packages).
//
// Reads the feed (`input`) in batches of 1000, checks every product's price, and writes a
// feedback row {"id", "status": "error", "message"} for each product it rejects: price
// missing, not a number, or above MAX_PRICE. The others count as sent.
//
//   node main.js                  the run: options from the environment (see README.md)
//   node main.js --health-check   exits 0 at once, touching nothing
//
// Exit status: 0 success (however many products were rejected); 1 a bad option value, or
// the Container API refused a request or did not answer (message on STDERR and, when the
// API takes it, at `error` level); 143 (130) stopped by SIGTERM (SIGINT).
'use strict';

const http = require('node:http');

if (process.argv.includes('--health-check')) process.exit(0);

const API = apiUrl(process.env.CONTAINER_API_URL || 'http://cde-container-api');
const BASE_PATH = API.pathname.replace(/\/+$/, '');
const BATCH_SIZE = 1000; // products per read, feedback rows per write (at most)
const TIMEOUT_MS = 5000; // per request, as the Productsup clients allow
// Connections kept alive across requests (one, as requests go one after the other; a
// log line written while a request hangs gets its own).
const agent = new http.Agent({ keepAlive: true });

/** The API's base URL; one line on STDERR and exit 1 when it is not an http: URL. */
function apiUrl(text) {
  let url = null;
  try {
    url = new URL(text);
  } catch {
    // reported below
  }
  if (url === null || url.protocol !== 'http:') {
    process.stderr.write(`node-export: error: CONTAINER_API_URL ${JSON.stringify(text)} is not an http:// URL\n`);
    process.exit(1);
  }
  return url;
}

/** The Container API refused a request or did not answer. */
class ApiError extends Error {}

/** A bad option value. */
class OptionError extends Error {}

/**
 * One request; resolves to {status, body} on a 2xx answer (body parsed when JSON),
 * rejects with an ApiError otherwise. Never retried.
 */
function request(method, path, body, timeoutMs = TIMEOUT_MS) {
  const what = `${method} ${path}`;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        hostname: API.hostname,
        port: API.port || 80,
        path: BASE_PATH + path,
        method,
        agent,
        headers: payload
          ? { 'Content-Type': 'application/json', 'Content-Length': payload.length }
          : {},
      },
      (res) => {
        const chunks = [];
        res.on('data', (chunk) => chunks.push(chunk));
        res.on('error', (e) => reject(new ApiError(`${what} failed: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed = null;
          try {
            parsed = text ? JSON.parse(text) : null;
          } catch {
            // not JSON: only the status counts
          }
          if (res.statusCode < 200 || res.statusCode > 299) {
            reject(new ApiError(`${what} failed: HTTP ${res.statusCode}${describe(parsed)}`));
          } else {
            resolve({ status: res.statusCode, body: parsed });
          }
        });
      },
    );
    req.setTimeout(timeoutMs, () =>
      req.destroy(new ApiError(`${what} failed: no answer within ${timeoutMs / 1000} s`)),
    );
    req.on('error', (e) =>
      reject(e instanceof ApiError ? e : new ApiError(`${what} failed: ${e.message}`)),
    );
    req.end(payload);
  });
}

/** The API's own words about an error answer: its message and field errors. */
function describe(body) {
  if (!body || typeof body !== 'object') return '';
  let text = typeof body.message === 'string' && body.message ? `: ${body.message}` : '';
  if (body.errors && typeof body.errors === 'object') {
    const fields = Object.entries(body.errors).map(([field, error]) => `${field}: ${error}`);
    if (fields.length) text += ` (${fields.join('; ')})`;
  }
  return text;
}

const log = (level, message, timeoutMs) =>
  request('POST', `/logs/${level}`, { message }, timeoutMs);

/** MAX_PRICE: a positive decimal number (default 1000). */
function maxPrice() {
  const raw = process.env.MAX_PRICE === undefined ? '1000' : process.env.MAX_PRICE;
  const value = /^\s*\d+(\.\d+)?\s*$/.test(raw) ? Number(raw) : NaN;
  if (!(value > 0) || !Number.isFinite(value)) {
    throw new OptionError(
      `MAX_PRICE must be a positive number (e.g. 1000 or 49.90), got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

/** Why the product cannot be sent, or null when it can. Values come as text or typed. */
function rejection(product, limit) {
  const price = product.price;
  if (price === undefined || price === null || price === '') return 'price is missing';
  const text = String(price).trim();
  const number = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/.test(text) ? Number(text) : NaN;
  if (typeof price === 'boolean' || typeof price === 'object' || !Number.isFinite(number)) {
    return `price ${JSON.stringify(price)} is not a number`;
  }
  if (number > limit) return `price ${text} is above MAX_PRICE (${limit})`;
  return null;
}

const counts = { read: 0, sent: 0, rejected: 0, feedback: 0, withoutId: 0 };

async function main() {
  const limit = maxPrice();
  await log('info', `checking products against MAX_PRICE=${limit}`);
  // Reads until the API says the input is exhausted (`data: []`), then never again.
  for (;;) {
    const { body } = await request('GET', `/input/input/next_batch?size=${BATCH_SIZE}`);
    const batch = body && Array.isArray(body.data) ? body.data : null;
    if (batch === null) throw new ApiError('GET /input/input/next_batch answered without a data array');
    if (batch.length === 0) break;
    counts.read += batch.length;
    // Only this batch's rows are held: memory does not grow with the feed.
    const feedback = [];
    for (const product of batch) {
      const why = rejection(product, limit);
      if (why === null) {
        counts.sent += 1;
        continue;
      }
      counts.rejected += 1;
      const id = product.id;
      if (id === undefined || id === null || id === '') counts.withoutId += 1;
      else feedback.push({ id, status: 'error', message: why });
    }
    if (feedback.length > 0) {
      await request('POST', '/output/feedback', { data: feedback });
      counts.feedback += feedback.length;
    }
  }
  // Closing is harmless when nothing was written (no file is made then).
  await request('POST', '/output/feedback/close');
  if (counts.read === 0) {
    await log('notice', 'the input has no products: nothing to send');
  } else {
    if (counts.withoutId > 0) {
      await log('warning', `${counts.withoutId} rejected products have no id: no feedback for them`);
    }
    await log(
      'notice',
      `checked ${counts.read} products: ${counts.sent} sent, ${counts.rejected} rejected ` +
        `(${counts.feedback} feedback rows)`,
    );
  }
  await log('success', `export done: ${counts.sent} of ${counts.read} products sent`);
}

/** Ends the process with `status` once the log line is written (or could not be). */
async function finish(status, level, message, alsoStderr) {
  if (alsoStderr) process.stderr.write(`node-export: ${level}: ${message}\n`);
  try {
    await log(level, message, 2000);
  } catch {
    if (!alsoStderr) process.stderr.write(`node-export: ${level}: ${message}\n`);
  }
  agent.destroy();
  process.exit(status);
}

let stopping = false;
for (const [signal, status] of [['SIGTERM', 143], ['SIGINT', 130]]) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    // However the API behaves, the process is gone within a second.
    setTimeout(() => process.exit(status), 1000).unref();
    const message = `stopped by ${signal} after reading ${counts.read} products`;
    request('POST', '/logs/warning', { message }, 800)
      .catch(() => process.stderr.write(`node-export: ${message}\n`))
      .finally(() => process.exit(status));
  });
}

main().then(
  () => {
    agent.destroy();
    process.exit(0);
  },
  (error) => {
    if (stopping) return; // the signal handler ends the process
    if (error instanceof OptionError) return finish(1, 'error', error.message, false);
    if (error instanceof ApiError) return finish(1, 'error', error.message, true);
    // A bug: one line, no stack trace in the run's log.
    return finish(1, 'error', `unexpected error: ${error && error.message}`, true);
  },
);
