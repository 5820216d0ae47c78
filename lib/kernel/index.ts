/** The native backend: the real kernel, where it can serve. */
import { registerBackend } from '../core/backend';
import type { Region } from '../core/region';
import type { Userfaultfd } from '../core/userfaultfd';
import { binding } from '../base/native';
import { fallbackWarning } from './fallback-warning';
import { probeKernel } from './probe';
import { KernelRegion } from './region';
import { adoptKernelFd, openKernel } from './userfaultfd';
import { codedError, UffdError } from '../base/errors';

if (binding) binding.setErrorClass(UffdError);

function requireKernel(): void {
  const p = probeKernel();
  if (!p.available) {
    throw codedError('ERR_UFFD_UNAVAILABLE', `userfaultfd: the native backend is unavailable: ${p.reason}`);
  }
}

registerBackend<Userfaultfd, Region>({
  name: 'native',
  probe: probeKernel,
  open(options) {
    if (!binding) requireKernel();
    return openKernel(options);
  },
  fromFd(fd, options) {
    if (!binding) requireKernel();
    return adoptKernelFd(fd, options);
  },
  mapRegion(length, options) {
    if (!binding) requireKernel();
    return KernelRegion.create(length, options);
  },
  fallbackWarning,
});

export { KernelRegion, probeKernel };
export { KernelUserfaultfd } from './userfaultfd';
