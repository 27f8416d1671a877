import type { Api } from './api';
import { createSdkApi } from './sdk';

/** The one client of the app: grpc-web to the same origin the app was served from. */
export const api: Api = createSdkApi(typeof window === 'undefined' ? 'http://localhost' : window.location.origin);
