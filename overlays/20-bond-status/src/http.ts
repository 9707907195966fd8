/**
 * The HTTP API. Routing is an exact match of the request path against a fixed table: no request
 * names a file, so `/../../etc/passwd` or `/%2e%2e/` is just a path that is not in the table (404).
 * Every answer is built from the monitor's snapshot in memory.
 *
 * Limits, because the service runs on a small appliance that may sit on an open LAN: node's parser
 * answers 431 to headers over maxHeaderSize, we answer 414 to long URLs; a client that dribbles its
 * headers or request, or connects and says nothing, is cut off by headersTimeout/requestTimeout;
 * idle keep-alive sockets close after keepAliveTimeout; event streams are capped in number, and a
 * stream whose reader stops reading is dropped once its backlog passes a bound instead of buffering
 * without end.
 *
 * Connections are capped per client address as well as in total: with only the total, one machine
 * holding a few hundred slow connections (slowloris) filled it, and every other client was turned
 * away until the timeouts freed a slot, for seconds at a time. A client past its share loses its own
 * oldest connection that is not being answered; the others never notice.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { FailoverEvent } from './failover.ts';
import { metricsContentType, renderMetrics } from './metrics.ts';
import type { BondMonitor } from './monitor.ts';
import { page, pageContentSecurityPolicy } from './page.ts';
import { statusDocument } from './status.ts';

export interface HttpLimits {
  maxUrlBytes: number;
  maxHeaderBytes: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /** How often node checks the two timeouts above; its default of 30 s would let a slow client linger. */
  timeoutCheckMs: number;
  /** Over all clients: what node itself enforces (server.maxConnections). */
  maxConnections: number;
  /** Per remote address; a browser uses 6 and an event stream, the benchmark 16. */
  maxConnectionsPerClient: number;
  maxStreams: number;
  heartbeatMs: number;
  maxStreamBacklogBytes: number;
}

export const defaultLimits: HttpLimits = {
  maxUrlBytes: 2048,
  maxHeaderBytes: 8192,
  // A LAN client sends its few hundred bytes of request at once; 3 s leaves room for lost packets.
  headersTimeoutMs: 3_000,
  requestTimeoutMs: 5_000,
  keepAliveTimeoutMs: 5_000,
  timeoutCheckMs: 500,
  maxConnections: 256,
  maxConnectionsPerClient: 32,
  maxStreams: 32,
  heartbeatMs: 15_000,
  maxStreamBacklogBytes: 64 * 1024,
};

type Handler = (res: ServerResponse, head: boolean) => void;

const allowed = 'GET, HEAD';

export interface StatusServer {
  server: Server;
  /** Ends the event streams and closes every connection, so tests and SIGTERM do not hang on them. */
  close(): Promise<void>;
}

export function createStatusServer(monitor: BondMonitor, overrides: Partial<HttpLimits> = {}): StatusServer {
  const limits = { ...defaultLimits, ...overrides };
  const streams = new Set<ServerResponse>();

  const routes = new Map<string, Handler>([
    ['/', (res, head) => send(res, head, 200, 'text/html; charset=utf-8', page, { 'Content-Security-Policy': pageContentSecurityPolicy })],
    ['/healthz', (res, head) => send(res, head, 200, 'text/plain; charset=utf-8', 'ok\n')],
    ['/api/status', (res, head) => sendJson(res, head, statusDocument(monitor))],
    ['/api/events', (res, head) => sendJson(res, head, { events: monitor.recentEvents() })],
    ['/api/events/stream', (res, head) => openStream(res, head)],
    ['/metrics', (res, head) => send(res, head, 200, metricsContentType, renderMetrics(monitor))],
  ]);

  function openStream(res: ServerResponse, head: boolean): void {
    if (streams.size >= limits.maxStreams) {
      send(res, head, 503, 'text/plain; charset=utf-8', 'too many event streams\n', { 'Retry-After': '5' });
      return;
    }
    res.writeHead(200, { 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff', 'Content-Type': 'text/event-stream; charset=utf-8', Connection: 'keep-alive' });
    if (head) {
      res.end();
      return;
    }
    streams.add(res);
    res.on('close', () => streams.delete(res));
    // The comment flushes the headers at once, so clients see the stream open before any failover.
    write(res, ': bond-status failover events\nretry: 2000\n\n');
  }

  function write(stream: ServerResponse, chunk: string): void {
    if (stream.writableLength > limits.maxStreamBacklogBytes) {
      stream.destroy();
      return;
    }
    stream.write(chunk);
  }

  const unsubscribe = monitor.onFailover((event: FailoverEvent) => {
    const chunk = `event: failover\ndata: ${JSON.stringify(event)}\n\n`;
    for (const stream of streams) write(stream, chunk);
  });
  // A failover's heal is known only once the gateway answers: the event again, with its heal_ms.
  // (A heal read before its failover was seen comes with a null event; the failover, when seen, carries it.)
  const unsubscribeHeals = monitor.onHeal((event, heal) => {
    const chunk = `event: heal\ndata: ${JSON.stringify({ event, heal })}\n\n`;
    for (const stream of streams) write(stream, chunk);
  });
  // Uplink tracking: `event: uplink` when an uplink's state changes, `event: decision` when
  // pibond-uplink moves the bond's primary (the failover that follows carries its reason).
  const unsubscribeUplinks = monitor.onUplink((event) => {
    const chunk = `event: ${event.type}\ndata: ${JSON.stringify(event)}\n\n`;
    for (const stream of streams) write(stream, chunk);
  });
  // Comments keep proxies and NAT tables from closing a quiet stream, and reveal dead readers.
  const heartbeat = setInterval(() => {
    for (const stream of streams) write(stream, ': heartbeat\n\n');
  }, limits.heartbeatMs);
  heartbeat.unref();

  const server = createServer(
    {
      maxHeaderSize: limits.maxHeaderBytes,
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      connectionsCheckingInterval: limits.timeoutCheckMs,
    },
    (req, res) => route(req, res),
  );
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;

  limitConnectionsPerClient(server, limits.maxConnectionsPerClient);

  function route(req: IncomingMessage, res: ServerResponse): void {
    const target = req.url ?? '';
    if (target.length > limits.maxUrlBytes) {
      send(res, false, 414, 'text/plain; charset=utf-8', 'URI too long\n', { Connection: 'close' });
      return;
    }
    const query = target.indexOf('?');
    const handler = routes.get(query < 0 ? target : target.slice(0, query));
    if (!handler) {
      send(res, req.method === 'HEAD', 404, 'text/plain; charset=utf-8', 'not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, false, 405, 'text/plain; charset=utf-8', 'method not allowed\n', { Allow: allowed });
      return;
    }
    handler(res, req.method === 'HEAD');
  }

  return {
    server,
    close: async () => {
      clearInterval(heartbeat);
      unsubscribe();
      unsubscribeHeals();
      unsubscribeUplinks();
      for (const stream of streams) stream.end();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    },
  };
}

/**
 * Caps each client address at `perClient` connections. A client at its share that connects again
 * loses its oldest connection that is not being answered (a slow request, an idle keep-alive, one
 * left half-open by a dead path) rather than the new one: the client it hurts is itself, and a
 * real client always gets its new try in. Connections in the middle of an answer (event streams
 * included) are kept; with none idle, the new one is refused.
 */
function limitConnectionsPerClient(server: Server, perClient: number): void {
  // Each client's connections, oldest first (a Set keeps insertion order).
  const connectionsByClient = new Map<string, Set<Socket>>();
  const answering = new WeakSet<Socket>();
  server.on('connection', (socket: Socket) => {
    const client = socket.remoteAddress ?? '';
    let mine = connectionsByClient.get(client);
    if (!mine) connectionsByClient.set(client, (mine = new Set()));
    if (mine.size >= perClient) {
      const idle = [...mine].find((other) => !answering.has(other));
      if (!idle) {
        socket.destroy();
        return;
      }
      mine.delete(idle);
      idle.destroy();
    }
    const set = mine;
    set.add(socket);
    socket.once('close', () => {
      set.delete(socket);
      if (set.size === 0 && connectionsByClient.get(client) === set) connectionsByClient.delete(client);
    });
  });
  server.prependListener('request', (req: IncomingMessage, res: ServerResponse) => {
    answering.add(req.socket);
    res.once('close', () => answering.delete(req.socket));
  });
}

function sendJson(res: ServerResponse, head: boolean, value: unknown): void {
  send(res, head, 200, 'application/json; charset=utf-8', JSON.stringify(value));
}

function send(res: ServerResponse, head: boolean, status: number, type: string, body: string, extraHeaders?: Record<string, string>): void {
  const bytes = Buffer.from(body, 'utf8');
  // One object literal of one shape: building it by spreading doubled the service's peak memory
  // under load (measured with scripts/bench/bond-status.ts), the rare extra headers go in apart.
  const headers: Record<string, string | number> = {
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Content-Type': type,
    'Content-Length': bytes.length,
  };
  if (extraHeaders) for (const [name, value] of Object.entries(extraHeaders)) headers[name] = value;
  res.writeHead(status, headers);
  res.end(head ? undefined : bytes);
}
