import { ConcurrencyLimit } from './concurrency-limit';

/** A task that stays in flight until released, recording the most that ever ran at once. */
function gate() {
  let running = 0;
  let peak = 0;
  const releases: (() => void)[] = [];
  const task = (value: number) => async () => {
    running++;
    peak = Math.max(peak, running);
    await new Promise<void>((resolve) => releases.push(resolve));
    running--;
    return value;
  };
  return { task, releaseAll: () => releases.splice(0).forEach((release) => release()), peak: () => peak, pending: () => releases.length };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('ConcurrencyLimit', () => {
  it('runs at most `limit` tasks at once, the rest in arrival order, and returns each result', async () => {
    const limit = new ConcurrencyLimit(2);
    const g = gate();
    const order: number[] = [];
    const results = [1, 2, 3, 4, 5].map((n) => limit.run(g.task(n)).then((value) => (order.push(value), value)));
    await tick();
    expect(g.pending()).toBe(2);
    while (g.pending() > 0) {
      g.releaseAll();
      await tick();
      await tick();
    }
    expect(await Promise.all(results)).toEqual([1, 2, 3, 4, 5]);
    expect(g.peak()).toBe(2);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('frees the slot of a task that fails', async () => {
    const limit = new ConcurrencyLimit(1);
    await expect(limit.run(async () => Promise.reject(new Error('engine said no')))).rejects.toThrow('engine said no');
    await expect(limit.run(async () => 'next')).resolves.toBe('next');
  });

  it('lets everything through with a limit of 0', async () => {
    const limit = new ConcurrencyLimit(0);
    const g = gate();
    const all = [1, 2, 3, 4].map((n) => limit.run(g.task(n)));
    await tick();
    expect(g.pending()).toBe(4);
    g.releaseAll();
    expect(await Promise.all(all)).toEqual([1, 2, 3, 4]);
  });
});
