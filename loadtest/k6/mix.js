// Request load against kapi: a get/list/create/update mix at a constant arrival rate, with
// thresholds. The mix is MIX="get:60,list:15,create:10,update:15" (default) — e.g.
// MIX=get:100 for reads only, MIX=create:50,update:50 for writes only.
//
//   KAPI_URL=https://127.0.0.1:6443 KAPI_DATA_DIR=./kapi-data k6 run loadtest/k6/mix.js
//   RATE=500 DURATION=60s MIX=get:80,list:20 k6 run loadtest/k6/mix.js
//
// Thresholds (the run fails when one is crossed): fewer than 1 % failed requests, and per
// operation p99 latency: get 50 ms, list (limit=100) 100 ms, create/update 100 ms.
import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { CM, DURATION, JSON_HEADERS, RATE, SEED, VUS, cleanup, configmap, pick, seed, tlsOptions } from './lib.js';

const MIX = (__ENV.MIX || 'get:60,list:15,create:10,update:15')
  .split(',')
  .map((kv) => kv.split(':'))
  .map(([k, v]) => [k.trim(), parseFloat(v)]);

const conflicts = new Counter('update_conflicts');

export const options = Object.assign(tlsOptions(), {
  scenarios: {
    mix: {
      executor: 'constant-arrival-rate',
      rate: RATE,
      timeUnit: '1s',
      duration: DURATION,
      preAllocatedVUs: VUS,
      maxVUs: VUS * 4,
    },
  },
  thresholds: {
    http_req_failed: ['rate<0.01'],
    checks: ['rate>0.99'],
    'http_req_duration{op:get}': ['p(99)<50'],
    'http_req_duration{op:list}': ['p(99)<100'],
    'http_req_duration{op:create}': ['p(99)<100'],
    'http_req_duration{op:update}': ['p(99)<100'],
  },
  summaryTrendStats: ['avg', 'p(50)', 'p(90)', 'p(99)', 'max'],
});

export function setup() {
  seed();
}

export default function () {
  const op = pick(MIX);
  const i = Math.floor(Math.random() * SEED);
  const params = { headers: JSON_HEADERS, tags: { op } };
  switch (op) {
    case 'get': {
      const r = http.get(`${CM}/seed-${i}`, params);
      check(r, { 'get 200': (x) => x.status === 200 });
      break;
    }
    case 'list': {
      const sel = Math.random() < 0.5 ? '' : `&labelSelector=app%3Dapp-${i % 10}`;
      const r = http.get(`${CM}?limit=100${sel}`, params);
      check(r, { 'list 200': (x) => x.status === 200 });
      break;
    }
    case 'create': {
      const name = `c-${__VU}-${__ITER}-${Date.now() % 100000}`;
      const r = http.post(CM, configmap(name, i), params);
      check(r, { 'create 201': (x) => x.status === 201 });
      break;
    }
    case 'update': {
      // Unconditional update (no resourceVersion), as ConfigMaps allow.
      const r = http.put(`${CM}/seed-${i}`, configmap(`seed-${i}`, i + __ITER), Object.assign({}, params, {
        responseCallback: http.expectedStatuses(200, 409),
      }));
      if (r.status === 409) conflicts.add(1);
      check(r, { 'update 200/409': (x) => x.status === 200 || x.status === 409 });
      break;
    }
    default:
      throw new Error(`unknown op ${op}`);
  }
}

export function teardown() {
  cleanup();
}
