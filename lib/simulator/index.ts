/** The simulator backend: the same API over JavaScript memory, available on every platform. */
import { registerBackend } from '../core/backend';
import type { Region } from '../core/region';
import type { Userfaultfd } from '../core/userfaultfd';
import { constants, ioctlNames } from '../base/constants';
import { SimRegion } from './region';
import { SIMULATED_FEATURES } from './refusals';
import { adoptSimulatedFd, openSimulated, SimUserfaultfd } from './userfaultfd';

registerBackend<Userfaultfd, Region>({
  name: 'simulator',
  probe: () => ({
    backend: 'simulator',
    available: true,
    api: constants.API,
    features: [...SIMULATED_FEATURES],
    ioctls: ioctlNames((1n << 0n) | (1n << 1n) | (1n << 63n)),
    pageSize: constants.pageSize,
    unprivileged: 'allowed',
  }),
  open: openSimulated,
  fromFd: adoptSimulatedFd,
  mapRegion: SimRegion.create,
});

export { SimRegion, SimUserfaultfd };
