import { Injectable } from '@nestjs/common';
import { BerthConfig, KindSettings } from '../config/berth-config';
import { PersistentVolume, SESSION_HOME } from '../platform/container-platform';
import { SessionKind } from '../sessions/session-status';
import { KindProfile, KindUrls, LaunchShape, PoolVariant, SessionFacts } from './kind-profile';

/** A shell in the browser (xterm.js over a WebSocket), optionally on a persistent workspace. */
@Injectable()
export class TerminalKind implements KindProfile {
  readonly kind = SessionKind.Terminal;
  readonly settings: KindSettings;
  /** The agent hangs up the shell and exits in well under a second. */
  readonly stopGraceSeconds = 3;

  constructor(private readonly config: BerthConfig) {
    this.settings = config.terminal;
  }

  agentEnv(): Record<string, string> {
    return {};
  }

  /** A terminal has no launch-time options: one variant serves every launch without a workspace. */
  readonly poolVariants: readonly PoolVariant[] = [{ name: 'terminal', launchOptions: {} }];

  poolVariantFor(launch: LaunchShape): string | null {
    return launch.storage ? null : 'terminal';
  }

  poolAgentEnv(): Record<string, string> {
    return {};
  }

  /** A workspace is the whole home directory: dotfiles and projects survive into the next session. */
  volumes(session: SessionFacts): PersistentVolume[] {
    if (!session.volume) return [];
    return [{ name: session.volume, mountPath: SESSION_HOME, purpose: 'workspace', sizeBytes: this.config.platform.volumeBytes }];
  }

  urls(): KindUrls {
    return { cdp_url: null, live_view_url: null };
  }
}
