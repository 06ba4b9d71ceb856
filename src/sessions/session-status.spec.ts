import { ALLOWED_SOURCES, FINAL_STATUSES, LIVE_STATUSES, SessionStatus, isLive } from './session-status';

describe('session state machine', () => {
  it('has exactly the six statuses of the seed API', () => {
    expect(Object.values(SessionStatus)).toEqual(['pending', 'starting', 'started', 'stopped', 'expired', 'failed']);
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
  });

  it('lets any live session end', () => {
    for (const final of FINAL_STATUSES) expect([...ALLOWED_SOURCES[final]].sort()).toEqual([...LIVE_STATUSES].sort());
    expect(LIVE_STATUSES.every(isLive)).toBe(true);
    expect(FINAL_STATUSES.some(isLive)).toBe(false);
  });
});
