// Joining and leaving a running validateer set.
//   join:  the enclave account must be funded (it pays its parentchain fees), then the node runs as
//          `run` does: it registers, is provisioned by a member, syncs the sidechain and authors.
//   leave: with the node stopped, the enclave signs its unregistration and it is sent and finalized.
import { join, resolve } from 'node:path';
import { mkdirSync } from 'node:fs';
import { Keyring } from '@polkadot/keyring';
import { cryptoWaitReady, encodeAddress } from '@polkadot/util-crypto';
import { ValidateerError } from '../protocol/errors.ts';
import { Enclave } from '../enclave/boundary/host.ts';
import { enclaveInitFrom } from '../node/from-config.ts';
import type { ExtrinsicSigner } from '../parentchain/api.ts';
import { keyringSigner } from '../parentchain/signers.ts';
import { connectParentchain } from '../parentchain/substrate.ts';
import { BlockStore } from '../sidechain/store.ts';
import type { Config } from '../config/schema.ts';
import { toHex } from '../protocol/bytes.ts';

export interface JoinFlags {
  bootstrap?: string[];
  p2pPort?: string;
  fundFrom?: string;
  fundAmount: string;
}

/**
 * What an enclave account needs to register and keep anchoring for a while (base units of the dev chain: 10^12 per
 * unit).
 */
const MIN_BALANCE = 10n ** 12n;

function enclaveSigner(enclave: Enclave, publicKey: Uint8Array): ExtrinsicSigner {
  return {
    publicKey,
    scheme: 'ed25519',
    sign: async (payload) => (await enclave.call('signExtrinsic', { payload })).signature,
  };
}

/** Funds the enclave account from a dev account if asked; refuses to go on with an account that cannot pay fees. */
export async function prepareJoin(config: Config, flags: JoinFlags): Promise<void> {
  const endpoint = config.parentchain.endpoint;
  if (!endpoint)
    throw new ValidateerError(
      'JOIN_NO_PARENTCHAIN',
      'join needs --parentchain ws://… (the chain the set is registered on)',
    );
  const dataDir = resolve(config.dataDir);
  mkdirSync(dataDir, { recursive: true });
  const enclave = await Enclave.start(enclaveInitFrom(config, dataDir, 1));
  const pc = await connectParentchain({ endpoint, connectTimeoutMs: 30_000 });
  try {
    const account = (await enclave.call('info', {})).signingKey;
    const address = encodeAddress(account);
    let free = (await pc.balance(account)).free;
    if (free < MIN_BALANCE && flags.fundFrom) {
      await cryptoWaitReady();
      const amount = BigInt(flags.fundAmount);
      const from = keyringSigner(new Keyring({ type: 'sr25519' }).addFromUri(flags.fundFrom));
      const r = await pc.submit(from, { kind: 'transferKeepAlive', dest: account, amount }, { waitFor: 'finalized' });
      console.log(
        `funded the enclave account ${address} with ${amount} from ${flags.fundFrom} (parentchain block #${r.blockNumber})`,
      );
      free = (await pc.balance(account)).free;
    }
    if (free < MIN_BALANCE) {
      throw new ValidateerError(
        'JOIN_UNFUNDED',
        `the enclave account ${address} (${toHex(account)}) holds ${free}; it pays its own parentchain fees: send it at least ${MIN_BALANCE}, or pass --fund-from //Alice on a dev chain`,
      );
    }
  } finally {
    await pc.close();
    await enclave.close();
  }
}

/** Unregisters this validateer's enclave; the node must be stopped (its store is locked while it runs). */
export async function leave(config: Config): Promise<{ blockNumber: number; address: string }> {
  const endpoint = config.parentchain.endpoint;
  if (!endpoint)
    throw new ValidateerError(
      'LEAVE_NO_PARENTCHAIN',
      'leave needs --parentchain ws://… (or parentchain.endpoint in the config)',
    );
  const dataDir = resolve(config.dataDir);
  try {
    await (await BlockStore.open(join(dataDir, 'chain'))).close();
  } catch (err) {
    throw new ValidateerError(
      'LEAVE_NODE_RUNNING',
      `cannot open ${join(dataDir, 'chain')}: stop the validateer first (${(err as Error).message})`,
    );
  }
  const enclave = await Enclave.start(enclaveInitFrom(config, dataDir, 1));
  try {
    if (!(await enclave.call('parentchainLoad', {})).loaded)
      throw new ValidateerError('LEAVE_NOT_REGISTERED', `${dataDir} never followed a parentchain: nothing to leave`);
    const { callData, nonce } = await enclave.call('unregisterCall', {});
    const account = (await enclave.call('info', {})).signingKey;
    const pc = await connectParentchain({ endpoint, connectTimeoutMs: 30_000 });
    try {
      const signer = enclaveSigner(enclave, account);
      const r = await pc.submit(signer, { kind: 'raw', callData }, { waitFor: 'finalized', nonce });
      return { blockNumber: r.blockNumber, address: encodeAddress(account) };
    } finally {
      await pc.close();
    }
  } finally {
    await enclave.close();
  }
}
