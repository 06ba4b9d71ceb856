import { BerthConfig } from '../config/berth-config';
import { KindProfiles } from '../kinds/kind-profiles';
import { PoolTarget } from './warm-pool.repository';

/** Every pool variant of every kind, with its configured size (0: disabled) and the image it runs. */
export function poolTargets(kinds: KindProfiles, config: BerthConfig): PoolTarget[] {
  return kinds.all().flatMap((kind) =>
    kind.poolVariants.map((variant) => ({
      variant: variant.name,
      kind: kind.kind,
      image: kind.settings.image,
      size: config.pool.sizes[variant.name] ?? 0,
      launchOptions: variant.launchOptions,
    })),
  );
}
