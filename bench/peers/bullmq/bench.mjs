// BullMQ side of Automan's queue benchmark. Normally started by run.sh, which owns the
// private redis-server; this file only talks to the Redis given by REDIS_HOST/REDIS_PORT.
//
// stdout: one JSON object per line, nothing else. Progress goes to stderr.
//
// Environment:
//   REDIS_HOST (127.0.0.1), REDIS_PORT (required)
//   BENCH_MODE          label of the Redis persistence mode, e.g. aof_always | no_persistence
//   BENCH_N             jobs per round (5000)
//   BENCH_ROUNDS        rounds per workload, the median is reported (3)
//   BENCH_LAT_SAMPLES   add->start samples per latency round (1000)
//   BENCH_INFLIGHT      max queue.add calls in flight for add/dispatch_c32 (64)
//   BENCH_BULK          addBulk chunk size (1000)
//   BENCH_HEADER=1      print the versions line first
//   BENCH_WORKLOADS     comma list to run a subset (all)
//   BENCH_DATA_FS       filesystem type of the Redis data dir, only reported in the header

import { Queue, Worker } from 'bullmq';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

const env = process.env;
const intEnv = (name, def) => {
  const v = env[name];
  if (v === undefined || v === '') return def;
  const n = Number.parseInt(v, 10);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
};

const HOST = env.REDIS_HOST || '127.0.0.1';
const PORT = intEnv('REDIS_PORT', 0);
if (!PORT) throw new Error('REDIS_PORT is required (run.sh sets it)');
const MODE = env.BENCH_MODE || 'unknown';
const N = intEnv('BENCH_N', 5000);
const ROUNDS = intEnv('BENCH_ROUNDS', 3);
const LAT_SAMPLES = intEnv('BENCH_LAT_SAMPLES', 1000);
const INFLIGHT = intEnv('BENCH_INFLIGHT', 64);
const BULK = intEnv('BENCH_BULK', 1000);
const ALL = ['add', 'add_bulk', 'process_c1', 'process_c32', 'dispatch_c32', 'latency'];
const WORKLOADS = env.BENCH_WORKLOADS ? env.BENCH_WORKLOADS.split(',').map((s) => s.trim()) : ALL;
for (const w of WORKLOADS) if (!ALL.includes(w)) throw new Error(`unknown workload ${w}`);

// maxRetriesPerRequest: null is what BullMQ requires for Worker connections.
const connection = { host: HOST, port: PORT, maxRetriesPerRequest: null };
// Completed jobs are deleted right away (removeOnComplete: true) so Redis memory stays
// bounded by the backlog; failed jobs (none expected) are capped at the newest 1000.
const JOB_OPTS = { removeOnComplete: true, removeOnFail: { count: 1000 } };

const log = (...a) => console.error('[bullmq]', ...a);
const emit = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
// Nearest-rank percentile.
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
const round1 = (x) => Math.round(x * 10) / 10;
const round3 = (x) => Math.round(x * 1000) / 1000;

let queueSeq = 0;
const newQueue = (tag) => new Queue(`bench-${tag}-${++queueSeq}`, { connection, defaultJobOptions: JOB_OPTS });

async function dropQueue(queue) {
  await queue.obliterate({ force: true });
  await queue.close();
}

// queue.add one job at a time, never more than INFLIGHT outstanding (a sliding window:
// INFLIGHT lanes, each awaiting its add before issuing the next).
async function addWindowed(queue, n) {
  let next = 0;
  const lane = async () => {
    while (next < n) {
      const i = next++;
      await queue.add('noop', { i });
    }
  };
  await Promise.all(Array.from({ length: Math.min(INFLIGHT, n) }, lane));
}

async function addBulkChunks(queue, n) {
  for (let base = 0; base < n; base += BULK) {
    const chunk = [];
    for (let i = base; i < Math.min(n, base + BULK); i++) chunk.push({ name: 'noop', data: { i } });
    await queue.addBulk(chunk);
  }
}

// A Worker whose processor does nothing. Returns the worker and a function giving a promise
// that resolves once `n` jobs have completed (counted from 'completed' events).
function noopWorker(queueName, concurrency, hook) {
  const worker = new Worker(
    queueName,
    async (job) => {
      if (hook) hook(job);
    },
    { connection, concurrency, autorun: false },
  );
  let completed = 0;
  let failed = 0;
  let waiter = null;
  worker.on('completed', () => {
    completed++;
    if (waiter && completed >= waiter.n) {
      const w = waiter;
      waiter = null;
      w.resolve();
    }
  });
  worker.on('failed', (job, err) => {
    failed++;
    log(`job ${job?.id} failed: ${err?.message}`);
  });
  worker.on('error', (err) => log(`worker error: ${err?.message}`));
  const untilCompleted = (n) =>
    completed >= n
      ? Promise.resolve()
      : new Promise((resolve) => {
          waiter = { n, resolve };
        });
  return { worker, untilCompleted, counts: () => ({ completed, failed }) };
}

async function checkDrained(queue, n) {
  const c = await queue.getJobCounts('wait', 'active', 'delayed', 'failed', 'prioritized');
  const left = Object.values(c).reduce((a, b) => a + b, 0);
  if (left !== 0) throw new Error(`queue ${queue.name}: ${left} jobs not completed after ${n}: ${JSON.stringify(c)}`);
}

// ---- workloads: each returns jobs/s for one round ----

async function roundAdd() {
  const q = newQueue('add');
  await q.waitUntilReady();
  const t0 = performance.now();
  await addWindowed(q, N);
  const dt = (performance.now() - t0) / 1000;
  const waiting = await q.getWaitingCount();
  if (waiting !== N) throw new Error(`add: expected ${N} waiting, got ${waiting}`);
  await dropQueue(q);
  return N / dt;
}

async function roundAddBulk() {
  const q = newQueue('add_bulk');
  await q.waitUntilReady();
  const t0 = performance.now();
  await addBulkChunks(q, N);
  const dt = (performance.now() - t0) / 1000;
  const waiting = await q.getWaitingCount();
  if (waiting !== N) throw new Error(`add_bulk: expected ${N} waiting, got ${waiting}`);
  await dropQueue(q);
  return N / dt;
}

async function roundProcess(concurrency) {
  const q = newQueue(`process_c${concurrency}`);
  await addBulkChunks(q, N); // pre-fill, not timed
  const { worker, untilCompleted, counts } = noopWorker(q.name, concurrency);
  await worker.waitUntilReady();
  const done = untilCompleted(N);
  const t0 = performance.now();
  const running = worker.run();
  await done;
  const dt = (performance.now() - t0) / 1000;
  await worker.close();
  await running;
  if (counts().failed) throw new Error(`process_c${concurrency}: ${counts().failed} failed jobs`);
  await checkDrained(q, N);
  await dropQueue(q);
  return N / dt;
}

async function roundDispatch() {
  const q = newQueue('dispatch_c32');
  const { worker, untilCompleted, counts } = noopWorker(q.name, 32);
  await q.waitUntilReady();
  await worker.waitUntilReady();
  const running = worker.run();
  // Let the idle worker reach its blocking wait before the clock starts.
  await new Promise((r) => setTimeout(r, 200));
  const done = untilCompleted(N);
  const t0 = performance.now();
  await addWindowed(q, N);
  await done;
  const dt = (performance.now() - t0) / 1000;
  await worker.close();
  await running;
  if (counts().failed) throw new Error(`dispatch_c32: ${counts().failed} failed jobs`);
  await checkDrained(q, N);
  await dropQueue(q);
  return N / dt;
}

// add -> processor start, one job at a time on an idle concurrency-1 worker.
// Each sample waits for the job to complete before the next add, so every add hits an idle
// worker blocked in Redis. Returns the sorted samples in ms.
async function roundLatency(samples, warmup = 20) {
  const q = newQueue('latency');
  let pending = null;
  const { worker, untilCompleted } = noopWorker(q.name, 1, (job) => {
    const t = performance.now();
    if (pending && pending.id === job.id) pending.resolve(t);
  });
  await q.waitUntilReady();
  await worker.waitUntilReady();
  const running = worker.run();
  await new Promise((r) => setTimeout(r, 200));
  const out = [];
  for (let i = 0; i < warmup + samples; i++) {
    const jobId = `lat-${i}`;
    const started = new Promise((resolve) => {
      pending = { id: jobId, resolve };
    });
    const completed = untilCompleted(i + 1);
    const t0 = performance.now();
    await q.add('noop', { i }, { jobId });
    const t1 = await started;
    await completed;
    if (i >= warmup) out.push(t1 - t0);
  }
  await worker.close();
  await running;
  await dropQueue(q);
  return out.sort((a, b) => a - b);
}

async function warmUp() {
  // Untimed: loads the Lua scripts and warms the JIT on both the producer and worker paths.
  const n = Math.min(1000, N);
  const q = newQueue('warmup');
  await addWindowed(q, n);
  const { worker, untilCompleted } = noopWorker(q.name, 32);
  const done = untilCompleted(n);
  const running = worker.run();
  await done;
  await worker.close();
  await running;
  await dropQueue(q);
}

async function main() {
  const probe = new Queue('bench-probe', { connection });
  const client = await probe.client;
  const info = await client.info('server');
  const redisVersion = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  const persistence = await client.info('persistence');
  const aofEnabled = /aof_enabled:(\d)/.exec(persistence)?.[1] === '1';
  const fsyncPolicy = (await client.config('GET', 'appendfsync'))[1];
  await probe.close();

  if (env.BENCH_HEADER === '1') {
    const bullmqVersion = JSON.parse(
      readFileSync(new URL('./node_modules/bullmq/package.json', import.meta.url), 'utf8'),
    ).version;
    emit({
      peer: 'bullmq',
      kind: 'versions',
      bullmq: bullmqVersion,
      redis: redisVersion,
      node: process.version,
      n: N,
      rounds: ROUNDS,
      inflight: INFLIGHT,
      bulk_chunk: BULK,
      latency_samples: LAT_SAMPLES,
      job_opts: JOB_OPTS,
      ...(env.BENCH_DATA_FS ? { data_fs: env.BENCH_DATA_FS } : {}),
    });
  }
  log(`mode=${MODE} redis=${redisVersion} aof=${aofEnabled} appendfsync=${fsyncPolicy} port=${PORT} n=${N}`);

  await warmUp();

  const throughput = {
    add: roundAdd,
    add_bulk: roundAddBulk,
    process_c1: () => roundProcess(1),
    process_c32: () => roundProcess(32),
    dispatch_c32: roundDispatch,
  };

  for (const w of WORKLOADS) {
    const t0 = performance.now();
    if (w === 'latency') {
      const p50s = [];
      const p99s = [];
      for (let r = 0; r < ROUNDS; r++) {
        const s = await roundLatency(LAT_SAMPLES);
        p50s.push(pct(s, 50));
        p99s.push(pct(s, 99));
      }
      emit({
        peer: 'bullmq',
        mode: MODE,
        workload: 'latency',
        n: LAT_SAMPLES,
        rounds: ROUNDS,
        p50_ms: round3(median(p50s)),
        p99_ms: round3(median(p99s)),
        per_round_p50_ms: p50s.map(round3),
        per_round_p99_ms: p99s.map(round3),
      });
    } else {
      const rates = [];
      for (let r = 0; r < ROUNDS; r++) rates.push(await throughput[w]());
      emit({
        peer: 'bullmq',
        mode: MODE,
        workload: w,
        n: N,
        rounds: ROUNDS,
        median_per_s: round1(median(rates)),
        per_round_per_s: rates.map(round1),
      });
    }
    log(`${w} done in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    log(err?.stack || String(err));
    process.exit(1);
  },
);
