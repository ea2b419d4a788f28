// Consistent LIST from the watch cache (PERFORMANCE.md "consistent LIST"): SEED ConfigMaps
// (default 10000, ~1 KB each) are created in setup, then LISTs with resourceVersion="" (a
// consistent read) at a constant rate: half with a label selector matching nothing (the KEP-2340
// case), half a page of 500 objects with a continue token followed to the next page.
//
//   SEED=10000 KAPI_URL=https://127.0.0.1:6443 KAPI_DATA_DIR=./kapi-data k6 run loadtest/k6/list.js
//
// Thresholds: no failures; p99 of the selector-matches-nothing list under 100 ms (the target is
// stated for 300k objects: scale SEED up on a machine with the time to seed it).
import http from 'k6/http';
import { check } from 'k6';
import { CM, DURATION, JSON_HEADERS, VUS, cleanup, seed, tlsOptions } from './lib.js';

export const options = Object.assign(tlsOptions(), {
  setupTimeout: '600s',
  teardownTimeout: '120s',
  scenarios: {
    list: {
      executor: 'constant-arrival-rate',
      rate: parseInt(__ENV.RATE || '20', 10),
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: VUS * 4,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{op:list_none}': ['p(99)<100'],
    'http_req_duration{op:list_page}': ['p(99)<200'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
});

export function setup() {
  seed();
}

export default function () {
  if (Math.random() < 0.5) {
    const r = http.get(`${CM}?labelSelector=app%3Dnothing`, { headers: JSON_HEADERS, tags: { op: 'list_none' } });
    check(r, { 'list_none 200 and empty': (x) => x.status === 200 && x.json('items').length === 0 });
  } else {
    const r = http.get(`${CM}?limit=500`, { headers: JSON_HEADERS, tags: { op: 'list_page' } });
    const ok = check(r, { 'list_page 200': (x) => x.status === 200 });
    const token = ok ? r.json('metadata.continue') : '';
    if (token) {
      const r2 = http.get(`${CM}?limit=500&continue=${encodeURIComponent(token)}`, {
        headers: JSON_HEADERS,
        tags: { op: 'list_page' },
      });
      check(r2, { 'list_page continue 200': (x) => x.status === 200 });
    }
  }
}

export function teardown() {
  cleanup();
}
