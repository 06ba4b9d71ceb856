import { Injectable } from '@nestjs/common';
import { SessionKind } from '../sessions/session-status';
import { BrowserKind } from './browser.kind';
import { KindProfile } from './kind-profile';
import { TerminalKind } from './terminal.kind';

/** Every kind Berth runs, by name. Adding a kind is adding a profile here and a thin controller. */
@Injectable()
export class KindProfiles {
  private readonly byKind: ReadonlyMap<SessionKind, KindProfile>;

  constructor(terminal: TerminalKind, browser: BrowserKind) {
    this.byKind = new Map<SessionKind, KindProfile>([
      [terminal.kind, terminal],
      [browser.kind, browser],
    ]);
  }

  all(): KindProfile[] {
    return [...this.byKind.values()];
  }

  get(kind: SessionKind): KindProfile {
    const profile = this.byKind.get(kind);
    if (!profile) throw new Error(`no profile for session kind ${kind}`);
    return profile;
  }
}
