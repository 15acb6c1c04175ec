// The node's libp2p identity: an Ed25519 key kept at <dataDir>/p2p/peer-key so the peer id (which
// the parentchain registry publishes) survives restarts. A damaged file is an operator problem, never
// silently replaced: a new key would be a new peer id that the registered set does not know.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { ValidateerError } from '../protocol/errors.ts';

export function peerKeyPath(dataDir: string): string {
  return join(dataDir, 'p2p', 'peer-key');
}

/** Loads the key, or creates and persists a new Ed25519 key when there is no file yet. */
export async function loadOrCreatePeerKey(dataDir: string): Promise<PrivateKey> {
  const path = peerKeyPath(dataDir);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    const key = await generateKeyPair('Ed25519');
    await mkdir(join(dataDir, 'p2p'), { recursive: true, mode: 0o700 });
    await writeFileAtomic(path, privateKeyToProtobuf(key));
    return key;
  }
  try {
    return privateKeyFromProtobuf(new Uint8Array(bytes));
  } catch (err) {
    throw new ValidateerError(
      'P2P_PEER_KEY_CORRUPT',
      `peer key file ${path} is not a protobuf-encoded libp2p private key (${(err as Error).message}); restore it from a backup or delete it to get a new peer id`,
    );
  }
}

/** Write a temporary file (mode 0600, flushed) and rename it: a crash never leaves a half-written key. */
async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  await rename(tmp, path);
}
