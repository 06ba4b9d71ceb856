import { Logger } from '@nestjs/common';

/** Opens one stream; calls `ended` (once) when it breaks; resolves to a function that closes it. */
export type OpenStream = (ended: () => void) => Promise<() => void>;

/**
 * Keeps a platform's event stream open (ContainerPlatform.watchExits): when
 * it breaks or cannot be opened it is opened again after `retryMs`, and every
 * opening after the first is a resync, since whatever happened while it was
 * down was not seen. Returns a function that stops watching.
 */
export function keepWatching(open: OpenStream, onResync: () => void, options: { retryMs: number; logger: Logger; what: string }): () => void {
  let stopped = false;
  let connected = false;
  let close: (() => void) | null = null;
  let retry: NodeJS.Timeout | null = null;
  const schedule = () => {
    if (stopped || retry) return;
    retry = setTimeout(() => {
      retry = null;
      void connect();
    }, options.retryMs);
    retry.unref();
  };
  const connect = async () => {
    if (stopped) return;
    let ended = false;
    const onEnded = () => {
      if (ended) return;
      ended = true;
      close = null;
      if (stopped) return;
      options.logger.warn({ msg: `${options.what} ended; reconnecting` });
      schedule();
    };
    try {
      const opened = await open(onEnded);
      if (stopped) return opened();
      if (ended) return;
      close = opened;
      if (connected) onResync();
      connected = true;
    } catch (error) {
      // Not answering: the reachability watch and /health report that. What happens until it
      // answers is only seen by the resync of the next opening.
      if (connected) options.logger.warn({ msg: `${options.what} could not be opened; retrying`, error: (error as Error).message });
      connected = true;
      schedule();
    }
  };
  void connect();
  return () => {
    stopped = true;
    if (retry) clearTimeout(retry);
    close?.();
  };
}
