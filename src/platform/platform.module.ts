import { Module } from '@nestjs/common';
import { BerthConfig } from '../config/berth-config';
import { CONTAINER_PLATFORM, ContainerPlatform } from './container-platform';
import { DockerPlatform } from './docker/docker.platform';

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
            throw new Error('kubernetes platform wiring pending');
        }
      },
    },
  ],
  exports: [CONTAINER_PLATFORM],
})
export class PlatformModule {}
