import WebSocket from 'ws';
import { eventually } from './berth-harness';

/**
 * Connects to the terminal's WebSocket through the gateway's path form (what a
 * program uses), types a command, and resolves with everything the shell printed.
 */
export async function runInTerminal(pathUrl: string, token: string, command: string, expect: string): Promise<string> {
  const wsUrl = `${pathUrl.replace(/^http/, 'ws')}ws`;
  const socket = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${token}` } });
  let output = '';
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
      socket.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: HTTP ${res.statusCode}`)));
    });
    socket.on('message', (data: Buffer) => {
      output += data.toString('utf8');
    });
    socket.send(JSON.stringify({ type: 'resize', cols: 120, rows: 30 }));
    socket.send(JSON.stringify({ type: 'input', data: `${command}\r` }));
    // The command line itself is echoed too: wait for the output line, which
    // stands on a line of its own (after CR or LF, before CR LF).
    const printed = new RegExp(`[\r\n]${expect}\r\n`);
    await eventually(async () => printed.test(output), 10_000, `terminal output ${expect}`).catch((error: Error) => {
      throw new Error(`${error.message}; the terminal printed: ${JSON.stringify(output.slice(-500))}`);
    });
    return output;
  } finally {
    socket.close();
  }
}
