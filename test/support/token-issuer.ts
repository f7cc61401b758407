/**
 * An identity provider for tests: signing keys the test generates, a real HTTP server publishing
 * their public halves as a JWKS, and tokens signed with them.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type CryptoKey,
  exportJWK,
  exportSPKI,
  generateKeyPair,
  type JWK,
  type JWTPayload,
  SignJWT,
} from 'jose';

export interface SigningKey {
  kid: string;
  alg: string;
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** The public key as PEM (SPKI). */
  pem: string;
}

export interface SignOptions {
  /** @defaultValue the issuer's first key */
  key?: SigningKey;
  /** The `kid` header; @defaultValue the key's */
  kid?: string;
  /** Seconds from now; `null`: no `exp` claim. @defaultValue 300 */
  expiresIn?: number | null;
  /** Seconds from now; absent: no `nbf` claim. */
  notBefore?: number;
}

/**
 * `keys` are published at `jwksUrl`, counted in `fetches`. A key made with `createKey` is not
 * published until `publish` (a rotation). `hang()` makes the server take requests and never answer.
 */
export class TokenIssuer {
  fetches = 0;
  readonly keys: SigningKey[] = [];
  private readonly server: Server;
  private hanging = false;
  private readonly held = new Set<ServerResponse>();

  private constructor() {
    this.server = createServer((request, response) => this.answer(request, response));
  }

  static async start(): Promise<TokenIssuer> {
    const issuer = new TokenIssuer();
    await new Promise<void>((resolve) => issuer.server.listen(0, '127.0.0.1', resolve));
    return issuer;
  }

  get jwksUrl(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/.well-known/jwks.json`;
  }

  /** A new key pair, not yet published. */
  static async createKey(kid: string, alg = 'RS256'): Promise<SigningKey> {
    const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
    return { kid, alg, privateKey, publicKey, pem: await exportSPKI(publicKey) };
  }

  publish(key: SigningKey): void {
    this.keys.push(key);
  }

  hang(): void {
    this.hanging = true;
  }

  async sign(claims: JWTPayload, options: SignOptions = {}): Promise<string> {
    const key = options.key ?? this.keys[0];
    if (!key) throw new Error('the issuer has no key');
    const now = Math.floor(Date.now() / 1000);
    const jwt = new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: options.kid ?? key.kid, typ: 'JWT' })
      .setIssuedAt(now);
    const expiresIn = options.expiresIn === undefined ? 300 : options.expiresIn;
    if (expiresIn !== null) jwt.setExpirationTime(now + expiresIn);
    if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
    return jwt.sign(key.privateKey);
  }

  async close(): Promise<void> {
    for (const response of this.held) response.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async answer(request: IncomingMessage, response: ServerResponse): Promise<void> {
    this.fetches++;
    if (this.hanging) {
      this.held.add(response);
      return;
    }
    if (request.url !== '/.well-known/jwks.json') {
      response.writeHead(404).end();
      return;
    }
    const keys = await Promise.all(this.keys.map((key) => publicJwk(key)));
    response.writeHead(200, { 'content-type': 'application/jwk-set+json' });
    response.end(JSON.stringify({ keys }));
  }
}

async function publicJwk(key: SigningKey): Promise<JWK> {
  return { ...(await exportJWK(key.publicKey)), kid: key.kid, alg: key.alg, use: 'sig' };
}

const base64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** An unsecured JWT (`alg: none`, RFC 7519 section 6): header, claims and an empty signature. */
export function unsignedToken(claims: JWTPayload): string {
  const exp = Math.floor(Date.now() / 1000) + 300;
  return `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url({ exp, ...claims })}.`;
}

/**
 * The algorithm-confusion attack: an HS256 token whose HMAC secret is the bytes of the issuer's
 * public key (which anyone can fetch), made to pass a verifier that takes the header's word for
 * which algorithm the key is for.
 */
export async function hmacWithPublicKey(key: SigningKey, claims: JWTPayload): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256', kid: key.kid, typ: 'JWT' })
    .setExpirationTime('5m')
    .sign(new TextEncoder().encode(key.pem));
}
