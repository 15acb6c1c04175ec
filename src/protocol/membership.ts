// The one rule for who is a member of the shard's set at a parentchain block: registered at or before
// it, and not unregistered at or before it. The enclave's registry, the host's provisioning and
// dialling, and the CLI all ask this, so no two of them can disagree on a boundary block.
export interface MembershipSpan {
  registeredAt: number;
  /** The parentchain block of the unregistration; null or undefined while registered. */
  unregisteredAt?: number | null;
}

export function isActiveAt(m: MembershipSpan, number: number): boolean {
  return (
    m.registeredAt <= number &&
    (m.unregisteredAt === null || m.unregisteredAt === undefined || m.unregisteredAt > number)
  );
}
