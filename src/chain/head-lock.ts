// One lock for everything that moves the head (authoring, import, reorg, the onboarding sync's
// apply steps), so the enclave's head and the store's head move together.
export class HeadLock {
  private tail: Promise<unknown> = Promise.resolve();

  /** Runs `fn` after everything queued before it, whether that succeeded or not. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  /** Settles once everything queued so far has run. */
  idle(): Promise<unknown> {
    return this.tail;
  }
}
