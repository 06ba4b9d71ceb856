import { Injectable } from '@nestjs/common';
import { isIP } from 'node:net';
import { BerthConfig, KindSettings } from '../config/berth-config';
import { PersistentVolume, SESSION_HOME } from '../platform/container-platform';
import { SessionKind } from '../sessions/session-status';
import { SessionUrls } from '../sessions/session-urls';
import { DISCOVERY_PATH, DiscoveryBase, rewriteDiscovery } from './devtools-discovery';
import { KindProfile, KindUrls, LaunchShape, PoolVariant, SessionFacts } from './kind-profile';

/** What a browser session is launched with; stored on the row (`options`) and handed to the agent. */
export interface BrowserOptions {
  start_url?: string;
  headless: boolean;
  viewport: { width: number; height: number };
  view_only: boolean;
  /** The profile's name, when the session uses a persistent profile. */
  profile?: string;
}

export const DEFAULT_VIEWPORT = { width: 1280, height: 720 };

/** Where a persistent profile is mounted; Chromium's --user-data-dir (browser-container/README.md). */
export const PROFILE_MOUNT = `${SESSION_HOME}/profile`;

/**
 * Chromium driven over CDP, watched and taken over through a live view
 * (Xvfb + x11vnc + noVNC), optionally on a persistent profile.
 */
@Injectable()
export class BrowserKind implements KindProfile {
  readonly kind = SessionKind.Browser;
  readonly settings: KindSettings;
  /** The agent saves session cookies and closes Chromium cleanly (bounded at ~6 s) before it exits. */
  readonly stopGraceSeconds = 10;
  private readonly urlPolicy: string;

  constructor(
    private readonly config: BerthConfig,
    private readonly urls_: SessionUrls,
  ) {
    this.settings = config.browser;
    // The agent re-checks every redirect of the start navigation against the same allow-list.
    const allow = config.browser.startUrlAllow;
    this.urlPolicy = JSON.stringify({
      allow_hosts: allow.filter((entry) => !entry.includes('/') && !isIP(entry)),
      allow_cidrs: allow.filter((entry) => entry.includes('/') || isIP(entry)).map((entry) => (entry.includes('/') ? entry : `${entry}/${isIP(entry) === 6 ? 128 : 32}`)),
    });
  }

  agentEnv(session: SessionFacts): Record<string, string> {
    return {
      BERTH_OPTIONS: JSON.stringify(session.options),
      BERTH_URL_POLICY: this.urlPolicy,
      BERTH_MAX_UPLOAD_BYTES: String(this.config.browser.maxUploadBytes),
      BERTH_MAX_DOWNLOAD_BYTES: String(this.config.browser.maxDownloadBytes),
    };
  }

  /**
   * Headless and headful differ at launch (Xvfb, x11vnc, the window), so
   * each has its own pool; both start at the default viewport.
   */
  readonly poolVariants: readonly PoolVariant[] = [
    { name: 'browser-headless', launchOptions: { headless: true, viewport: DEFAULT_VIEWPORT } },
    { name: 'browser-headful', launchOptions: { headless: false, viewport: DEFAULT_VIEWPORT } },
  ];

  /**
   * A profile is a mount: cold start. A headless window is resized at bind,
   * so any viewport fits; a headful screen is the size Xvfb started with.
   */
  poolVariantFor(launch: LaunchShape): string | null {
    if (launch.storage) return null;
    const options = launch.options as Partial<BrowserOptions>;
    if (options.headless) return 'browser-headless';
    const viewport = options.viewport ?? DEFAULT_VIEWPORT;
    return viewport.width === DEFAULT_VIEWPORT.width && viewport.height === DEFAULT_VIEWPORT.height ? 'browser-headful' : null;
  }

  poolAgentEnv(variant: PoolVariant): Record<string, string> {
    return {
      BERTH_LAUNCH_OPTIONS: JSON.stringify(variant.launchOptions),
      BERTH_URL_POLICY: this.urlPolicy,
      BERTH_MAX_UPLOAD_BYTES: String(this.config.browser.maxUploadBytes),
      BERTH_MAX_DOWNLOAD_BYTES: String(this.config.browser.maxDownloadBytes),
    };
  }

  volumes(session: SessionFacts): PersistentVolume[] {
    if (!session.volume) return [];
    return [{ name: session.volume, mountPath: PROFILE_MOUNT, purpose: 'profile', sizeBytes: this.config.platform.volumeBytes }];
  }

  gatewayRewrite(upstreamPath: string, base: DiscoveryBase): ((body: Buffer) => Buffer) | null {
    return DISCOVERY_PATH.test(upstreamPath) ? (body) => rewriteDiscovery(body, base) : null;
  }

  urls(session: SessionFacts, started: boolean, accessToken?: string): KindUrls {
    if (!started) return { cdp_url: null, live_view_url: null };
    const token = accessToken ? `?token=${accessToken}` : '';
    const headless = (session.options as Partial<BrowserOptions>).headless === true;
    return {
      // The path form: CDP clients are programs, and Node cannot resolve *.localhost.
      cdp_url: `${this.urls_.pathUrl(session.id, '/devtools/browser', 'ws')}${token}`,
      // The live view is a page people open: the session's own origin.
      live_view_url: headless ? null : `${this.urls_.pageUrl(session.id, '/')}${token}`,
    };
  }
}
