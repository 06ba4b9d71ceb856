import { Module } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import { CONTAINER_PLATFORM, ContainerPlatform } from './container-platform';
import { DockerPlatform } from './docker/docker.platform';
import { KubernetesPlatform } from './kubernetes/kubernetes.platform';

/** Provides the ContainerPlatform chosen by CONTAINER_PLATFORM. */
@Module({
  providers: [
    {
      provide: CONTAINER_PLATFORM,
      inject: [BerthConfig],
      useFactory: (config: BerthConfig): ContainerPlatform => {
        switch (config.platform.kind) {
          case 'docker':
            return new DockerPlatform(config);
          case 'kubernetes':
            return new KubernetesPlatform(config);
        }
      },
    },
  ],
  exports: [CONTAINER_PLATFORM],
})
export class PlatformModule {}
