/** The simulator backend (in progress): registered so that backend choice works. */
import { registerBackend } from '../backend';
import { constants } from '../constants';

function unavailable(): never {
  throw new Error('userfaultfd: the simulator backend is not built yet');
}

registerBackend({
  name: 'simulator',
  probe: () => ({
    backend: 'simulator', available: false, reason: 'not built yet', api: 0xaa, features: [], ioctls: [],
    pageSize: constants.pageSize, unprivileged: 'allowed',
  }),
  open: unavailable,
  fromFd: unavailable,
  mapRegion: unavailable,
});
