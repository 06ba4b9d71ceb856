import { Injectable, Logger, OnApplicationShutdown, OnModuleInit } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import { SessionsRepository } from '../sessions/sessions.repository';

/**
 * Marks sessions active when traffic passes through the gateway, HTTP or
 * WebSocket frames either way. `touch` only adds the id to a set (it runs
 * for every chunk); one UPDATE per ACTIVITY_FLUSH_SECONDS writes them all,
 * so a session costs at most one write per interval however busy it is.
 */
@Injectable()
export class ActivityRecorder implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(ActivityRecorder.name);
  private touched = new Set<string>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sessions: SessionsRepository,
    private readonly config: BerthConfig,
  ) {}

  onModuleInit(): void {
    this.timer = setInterval(() => void this.flush(), this.config.gateway.activityFlushMs);
    this.timer.unref();
  }

  async onApplicationShutdown(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.flush();
  }

  touch(sessionId: string): void {
    this.touched.add(sessionId);
  }

  async flush(): Promise<void> {
    if (this.touched.size === 0) return;
    const ids = [...this.touched];
    this.touched = new Set();
    try {
      await this.sessions.recordActivity(ids, 'gateway');
    } catch (error) {
      // Activity is advisory: the next traffic marks the session again.
      this.logger.warn({ msg: 'could not record session activity', sessions: ids.length, error: (error as Error).message });
    }
  }
}
