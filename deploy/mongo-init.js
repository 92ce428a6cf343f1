// MongoDB for deploy/compose.yaml. The mongo service's healthcheck runs this file
// (`mongosh --quiet --norc --file /etc/mailss/mongo-init.js`) every few seconds.
// It is idempotent and exits 0 only when the single-node replica set has a writable
// primary and every service user logs in with its current password, so
// `condition: service_healthy` means "ready for the services".
//
// mongod runs with --keyFile, i.e. with access control. The first runs initiate the
// replica set and create the root user through the localhost exception (allowed only
// while no user exists; mongosh runs inside the container). Later runs log in as root.
// Secrets come from the container's environment, never from this file. Rotating
// MONGO_ROOT_PASSWORD needs `db.changeUserPassword` by hand (the old one is needed);
// a service password is updated here when its variable changes.

const REPLICA_SET = { _id: 'rs0', members: [{ _id: 0, host: 'mongo:27017' }] };
// One user per service, allowed only in its own database (services share no collections).
const SERVICE_USERS = [
  { user: 'account', db: 'mailss_account', passwordVariable: 'MONGO_ACCOUNT_PASSWORD' },
  { user: 'rules', db: 'mailss_rules', passwordVariable: 'MONGO_RULES_PASSWORD' },
  { user: 'copyjob', db: 'mailss_copyjob', passwordVariable: 'MONGO_COPYJOB_PASSWORD' },
  { user: 'notifier', db: 'mailss_notifier', passwordVariable: 'MONGO_NOTIFIER_PASSWORD' },
];

function required(name) {
  const value = process.env[name];
  if (!value) {
    throw new Error(`${name} is not set`);
  }
  return value;
}

function notReady(reason) {
  print(`mongo not ready: ${reason}`);
  quit(1);
}

// A separate connection per login: a failed login leaves this shell's own
// (unauthenticated, localhost-exception) connection untouched.
function loginAs(user, password, database) {
  const credentials = `${encodeURIComponent(user)}:${encodeURIComponent(password)}`;
  const options = `authSource=${database}&directConnection=true&serverSelectionTimeoutMS=3000`;
  try {
    return connect(`mongodb://${credentials}@127.0.0.1:27017/${database}?${options}`);
  } catch (error) {
    return null;
  }
}

const hello = db.getSiblingDB('admin').runCommand({ hello: 1 });
if (!hello.setName) {
  rs.initiate(REPLICA_SET);
  notReady('replica set initiated, waiting for a primary');
}
if (!hello.isWritablePrimary) {
  notReady('no writable primary yet');
}

const rootUser = required('MONGO_ROOT_USERNAME');
const rootPassword = required('MONGO_ROOT_PASSWORD');
let root = loginAs(rootUser, rootPassword, 'admin');
if (!root) {
  try {
    db.getSiblingDB('admin').createUser({ user: rootUser, pwd: rootPassword, roles: ['root'] });
  } catch (error) {
    notReady(`cannot log in as ${rootUser}, and users exist already: is MONGO_ROOT_PASSWORD the one the data was created with? (${error.codeName || error.message})`);
  }
  root = loginAs(rootUser, rootPassword, 'admin') || notReady(`cannot log in as ${rootUser}`);
}

for (const { user, db: database, passwordVariable } of SERVICE_USERS) {
  const password = required(passwordVariable);
  if (loginAs(user, password, database)) {
    continue;
  }
  const target = root.getSiblingDB(database);
  const roles = [{ role: 'readWrite', db: database }];
  if (target.getUser(user)) {
    target.updateUser(user, { pwd: password, roles });
  } else {
    target.createUser({ user, pwd: password, roles });
  }
  loginAs(user, password, database) || notReady(`cannot log in as ${user} after setting its password`);
}

const ping = root.getSiblingDB('admin').runCommand({ ping: 1 });
if (ping.ok !== 1) {
  notReady('ping failed');
}
