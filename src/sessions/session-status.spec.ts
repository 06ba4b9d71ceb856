import { ALLOWED_SOURCES, FINAL_STATUSES, HOLDING_STATUSES, LIVE_STATUSES, POOL_STATUSES, SessionStatus, isFinal, isLive } from './session-status';

describe('session state machine', () => {
  it("has the seed API's six statuses plus stopping, and the warm pool's two", () => {
    expect(Object.values(SessionStatus)).toEqual(['warming', 'warm', 'pending', 'starting', 'started', 'stopping', 'stopped', 'expired', 'failed']);
  });

  it('takes a pool container to a session only through the claim, never back', () => {
    expect(ALLOWED_SOURCES[SessionStatus.Warm]).toEqual([SessionStatus.Warming]);
    expect(ALLOWED_SOURCES[SessionStatus.Warming]).toEqual([]);
    // The claim is its own statement (it sets the tenant); no transition leads from warm to starting.
    expect(ALLOWED_SOURCES[SessionStatus.Starting]).not.toContain(SessionStatus.Warm);
    for (const pool of POOL_STATUSES) {
      expect(isLive(pool)).toBe(false);
      expect(HOLDING_STATUSES).toContain(pool);
      for (const live of LIVE_STATUSES) expect(ALLOWED_SOURCES[pool]).not.toContain(live);
    }
  });

  it('never leaves a final state', () => {
    for (const target of Object.values(SessionStatus)) {
      for (const final of FINAL_STATUSES) expect(ALLOWED_SOURCES[target]).not.toContain(final);
    }
  });

  it('only goes forward', () => {
    expect(ALLOWED_SOURCES[SessionStatus.Started]).toEqual([SessionStatus.Starting]);
    expect(ALLOWED_SOURCES[SessionStatus.Starting]).not.toContain(SessionStatus.Started);
    expect(ALLOWED_SOURCES[SessionStatus.Pending]).toEqual([]);
    // A stopping session never comes back to life.
    for (const live of LIVE_STATUSES) expect(ALLOWED_SOURCES[live]).not.toContain(SessionStatus.Stopping);
  });

  it('ends through stopping (stopped, expired) or fails from any live state', () => {
    expect([...ALLOWED_SOURCES[SessionStatus.Stopping]].sort()).toEqual([...POOL_STATUSES, ...LIVE_STATUSES].sort());
    expect(ALLOWED_SOURCES[SessionStatus.Stopped]).toEqual([SessionStatus.Stopping]);
    expect(ALLOWED_SOURCES[SessionStatus.Expired]).toEqual([SessionStatus.Stopping]);
    expect([...ALLOWED_SOURCES[SessionStatus.Failed]].sort()).toEqual([...POOL_STATUSES, ...LIVE_STATUSES].sort());
    expect(LIVE_STATUSES.every(isLive)).toBe(true);
    expect(FINAL_STATUSES.some(isLive)).toBe(false);
    expect(FINAL_STATUSES.every(isFinal)).toBe(true);
    expect(HOLDING_STATUSES).toContain(SessionStatus.Stopping);
    expect(isLive(SessionStatus.Stopping) || isFinal(SessionStatus.Stopping)).toBe(false);
  });
});
