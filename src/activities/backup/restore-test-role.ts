/**
 * The verification restore test runs a dump we cannot fully trust (a crafted TOC entry is arbitrary SQL; a
 * CHECK constraint or index expression runs a function of the dump for every row). So it runs as a dedicated
 * role that can do nothing outside the scratch database:
 *
 * - the role owns only the scratch database (created for it by the app role, which is a member of it) and is
 *   NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS, member of no role: it cannot create, rename or
 *   reach other databases' objects, cannot write files or run programs (COPY TO PROGRAM needs superuser or
 *   pg_execute_server_program), cannot SET ROLE to the app role;
 * - every session in the scratch database is the role's own (pg_restore AND the row counts): the app role never
 *   connects to it, so a function, policy or search_path planted there never runs with the app role's rights
 *   (which could, e.g., ALTER ROLE itself — changing the live app's settings or password);
 * - what the role can change about itself (its own settings and password) is reset by the worker before every
 *   run, so one planted dump cannot poison the next verification.
 *
 * Checked here at every run, so a misconfigured role is refused, not trusted.
 */
import pg from 'pg';

export class RestoreTestRoleError extends Error {
  override readonly name = 'RestoreTestRoleUnsafe';
}

const ident = (name: string) => pg.escapeIdentifier(name);

/**
 * Refuses a role that could act outside the scratch database, then resets what the role may have changed about
 * itself (settings, password) — through SET ROLE, which the app role may do as a member. `admin` is a session of
 * the app role on the maintenance database.
 */
export async function resetRestoreTestRole(admin: pg.Client, role: string, password: string, appUser: string): Promise<void> {
  if (role === appUser) throw new RestoreTestRoleError(`backup.restoreTest.role must not be the app role ${appUser}: the restore test runs untrusted SQL`);
  const r = await admin.query<{ rolsuper: boolean; rolcreatedb: boolean; rolcreaterole: boolean; rolreplication: boolean; rolbypassrls: boolean; rolcanlogin: boolean; memberof: string[] }>(
    `SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin,
            ARRAY(SELECT b.rolname FROM pg_auth_members m JOIN pg_roles b ON b.oid = m.roleid WHERE m.member = r.oid)::text[] AS memberof
       FROM pg_roles r WHERE rolname = $1`,
    [role],
  );
  const row = r.rows[0];
  if (!row) throw new RestoreTestRoleError(`PostgreSQL role ${role} (backup.restoreTest.role) does not exist; create it as scripts/services.sh does (pg_bootstrap)`);
  const powers = (['rolsuper', 'rolcreatedb', 'rolcreaterole', 'rolreplication', 'rolbypassrls'] as const).filter((k) => row[k]).map((k) => k.slice(3).toUpperCase());
  if (powers.length) throw new RestoreTestRoleError(`PostgreSQL role ${role} has ${powers.join(', ')}; the restore-test role must have none of them`);
  if (row.memberof.length) throw new RestoreTestRoleError(`PostgreSQL role ${role} is a member of ${row.memberof.join(', ')}; the restore-test role must be a member of no role`);
  if (!row.rolcanlogin) throw new RestoreTestRoleError(`PostgreSQL role ${role} cannot log in (ALTER ROLE ${role} LOGIN)`);
  await admin.query(`SET ROLE ${ident(role)}`);
  try {
    await admin.query(`ALTER ROLE ${ident(role)} RESET ALL`);
    await admin.query(`ALTER ROLE ${ident(role)} PASSWORD ${pg.escapeLiteral(password)}`);
  } catch (err) {
    throw new RestoreTestRoleError(`cannot reset role ${role} as ${appUser} (is ${appUser} a member of it? GRANT ${role} TO ${appUser}): ${(err as Error).message}`);
  } finally {
    await admin.query('RESET ROLE');
  }
}

/** The scratch database, owned by the restricted role and closed to everyone else (PUBLIC loses CONNECT/TEMP). */
export async function createRestoreTestDatabase(admin: pg.Client, name: string, role: string, marker: string): Promise<void> {
  await admin.query(`CREATE DATABASE ${ident(name)} OWNER ${ident(role)}`);
  await admin.query(`REVOKE ALL ON DATABASE ${ident(name)} FROM PUBLIC`);
  await admin.query(`COMMENT ON DATABASE ${ident(name)} IS ${pg.escapeLiteral(marker)}`);
}
