/**
 * userfaultfd for Node.js: the real Linux userfaultfd(2), and a simulator with the same API
 * everywhere else. See README.md.
 */
import './kernel';
import './simulator';
import './typed-events';

export { Userfaultfd } from './userfaultfd';
export type { UserfaultfdEvents, ForkEvent, UffdEvent } from './typed-events';
export type { Served } from './userfaultfd';
export { Region } from './region';
export { PageSource } from './page-source';
export type { FileSourceOptions, PageSourceKind } from './page-source';
export { UffdError } from './errors';
export type { UffdErrorCode } from './errors';
export { probe } from './backend';
export { constants, FEATURE_NAMES, IOCTL_NAMES } from './constants';
export type * from './types';
export { sendUffd, listenForUffd, UffdListener } from './fdpass';
export type { ReceivedUffd, PeerCredentials, ListenOptions, SendOptions, FdPassError, FdPassErrorCode } from './fdpass';
export type { CustomRead, CustomSourceOptions, SourceInfo } from './custom-source';
export type { HttpSourceOptions } from './http-source';
export { readWorkingSet } from './working-set';
export type { WorkingSetFile, WorkingSetRun, WorkingSetErrorCode } from './working-set';
export type { DirtyRun, DirtyPagesOptions } from './dirty';
export type { SnapshotResult } from './snapshot';
