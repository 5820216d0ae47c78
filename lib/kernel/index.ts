/** The native backend: the real kernel, where it can serve. */
import { registerBackend } from '../backend';
import { binding } from '../native';
import { probeKernel } from './probe';
import { KernelRegion } from './region';
import { adoptKernelFd, openKernel } from './userfaultfd';
import { UffdError } from '../errors';

if (binding) binding.setErrorClass(UffdError);

function requireKernel(): void {
  const p = probeKernel();
  if (!p.available) {
    const e = new Error(`userfaultfd: the native backend is unavailable: ${p.reason}`);
    Object.assign(e, { code: 'ERR_UFFD_UNAVAILABLE' });
    throw e;
  }
}

registerBackend({
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
});

export { KernelRegion, probeKernel };
export { KernelUserfaultfd } from './userfaultfd';
