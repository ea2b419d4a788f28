// Shared settings for the k6 scripts: kapi's URL and admin client certificate, the TLS options
// (kapi's CA is self-signed: certificate verification is skipped, the client certificate is
// sent), and helpers to build ~1 KB ConfigMaps.
//
// Environment: KAPI_URL (e.g. https://127.0.0.1:6443), KAPI_DATA_DIR (kapi's --data-dir, for
// pki/admin.crt and pki/admin.key), K6_NS (namespace, default "k6"), SEED (objects created in
// setup, default 200), RATE (iterations/s), DURATION (e.g. "30s"), VUS (pre-allocated VUs).
import http from 'k6/http';

export const BASE = __ENV.KAPI_URL || 'https://127.0.0.1:6443';
const DATA = __ENV.KAPI_DATA_DIR || './kapi-data';
export const NS = __ENV.K6_NS || 'k6';
export const SEED = parseInt(__ENV.SEED || '200', 10);
export const RATE = parseInt(__ENV.RATE || '200', 10);
export const DURATION = __ENV.DURATION || '30s';
export const VUS = parseInt(__ENV.VUS || '20', 10);

const CERT = open(`${DATA}/pki/admin.crt`);
const KEY = open(`${DATA}/pki/admin.key`);
const HOST = BASE.replace(/^https?:\/\//, '').replace(/[:/].*$/, '');

export function tlsOptions() {
  return {
    insecureSkipTLSVerify: true,
    tlsAuth: [{ domains: [HOST], cert: CERT, key: KEY }],
  };
}

export const JSON_HEADERS = { 'Content-Type': 'application/json', Accept: 'application/json' };
const PAD = 'x'.repeat(700);

export function configmap(name, seq) {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: NS, labels: { app: `app-${seq % 10}`, k6: 'true' } },
    data: { seq: String(seq), payload: PAD },
  });
}

export const CM = `${BASE}/api/v1/namespaces/${NS}/configmaps`;

// Creates the namespace and SEED ConfigMaps seed-0..seed-(SEED-1) (existing ones are kept).
export function seed() {
  const ns = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  const r = http.post(`${BASE}/api/v1/namespaces`, ns, { headers: JSON_HEADERS });
  if (r.status !== 201 && r.status !== 409) {
    throw new Error(`creating namespace ${NS}: ${r.status} ${r.body}`);
  }
  const reqs = [];
  for (let i = 0; i < SEED; i++) {
    reqs.push(['POST', CM, configmap(`seed-${i}`, i), { headers: JSON_HEADERS }]);
  }
  for (let i = 0; i < reqs.length; i += 50) {
    for (const res of http.batch(reqs.slice(i, i + 50))) {
      if (res.status !== 201 && res.status !== 409) {
        throw new Error(`seeding: ${res.status} ${res.body}`);
      }
    }
  }
}

// Deletes the ConfigMaps a run created (labelled k6=true), leaving the namespace.
export function cleanup() {
  http.del(`${CM}?labelSelector=k6%3Dtrue`, null, { headers: JSON_HEADERS });
}

export function pick(weights) {
  // weights: [[name, weight], ...]
  const total = weights.reduce((s, w) => s + w[1], 0);
  let r = Math.random() * total;
  for (const [name, w] of weights) {
    if ((r -= w) < 0) return name;
  }
  return weights[weights.length - 1][0];
}
