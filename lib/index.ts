/**
 * userfaultfd for Node.js: the real Linux userfaultfd(2), and a simulator with the same API
 * everywhere else. See README.md.
 */
import './kernel';
import './simulator';
import './core/typed-events';

export { Userfaultfd } from './core/userfaultfd';
export type { UserfaultfdEvents } from './core/typed-events';
export type { ForkEvent, UffdEvent } from './core/userfaultfd';
export type { Served } from './core/serving';
export { Region } from './core/region';
export { PageSource } from './sources/page-source';
export type { FileSourceOptions, PageSourceKind } from './sources/page-source';
export { UffdError } from './base/errors';
export type { UffdErrorCode } from './base/errors';
export { probe } from './core/backend';
export { constants, FEATURE_NAMES, IOCTL_NAMES } from './base/constants';
export type * from './base/types';
export { sendUffd, listenForUffd, UffdListener } from './tools/fdpass';
export type { ReceivedUffd, PeerCredentials, ListenOptions, SendOptions, FdPassError, FdPassErrorCode } from './tools/fdpass';
export type { CustomRead, CustomSourceOptions, SourceInfo } from './sources/custom-source';
export type { HttpSourceOptions } from './sources/http-source';
export { readWorkingSet } from './sources/working-set';
export type { WorkingSetFile, WorkingSetRun, WorkingSetErrorCode } from './sources/working-set';
export type { DirtyRun, DirtyPagesOptions } from './sources/dirty';
export type { SnapshotResult } from './sources/snapshot';
