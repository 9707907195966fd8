/**
 * Small HTTP clients for the tests. `raw` speaks over a plain socket so a test controls every byte
 * (paths with `..` that fetch would normalise away, oversize headers, half-sent requests).
 */
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';

export interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** `localAddress` picks the client's source address, e.g. 127.0.0.2 to be another machine on loopback. */
export function request(url: string, method = 'GET', headers: Record<string, string> = {}, localAddress?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, headers, agent: false, localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

export async function json<T>(url: string): Promise<T> {
  const answer = await request(url);
  if (answer.status !== 200) throw new Error(`${url}: HTTP ${answer.status}`);
  return JSON.parse(answer.body) as T;
}

/** Sends `text` as is and collects everything until the server closes (or `timeoutMs` passes). */
export function raw(url: string, text: string, timeoutMs = 3000): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close within ${timeoutMs} ms; got ${JSON.stringify(received.slice(0, 200))}`));
    }, timeoutMs);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    // The server may close while we are still writing an oversize request: what it answered counts.
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0), text: received });
    });
    socket.write(text);
  });
}

/** An open event stream: collects `event:`/`data:` pairs as they arrive. */
export interface EventStream {
  events: { event: string; data: string }[];
  comments: string[];
  headers: IncomingHttpHeaders;
  close(): void;
}

export function openEventStream(url: string): Promise<EventStream> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent: false, headers: { Accept: 'text/event-stream' } }, (res) => {
      const stream: EventStream = { events: [], comments: [], headers: res.headers, close: () => req.destroy() };
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = block.split('\n');
          for (const line of fields) if (line.startsWith(':')) stream.comments.push(line.slice(1).trim());
          const event = fields.find((l) => l.startsWith('event: '))?.slice(7);
          const data = fields.find((l) => l.startsWith('data: '))?.slice(6);
          if (event !== undefined && data !== undefined) stream.events.push({ event, data });
        }
      });
      res.on('error', () => {});
      resolve(stream);
    });
    req.on('error', reject);
    req.end();
  });
}
