"""What-if: a policy replayed over recorded cycle dates in a scratch database (CONTRACT §5)."""
from arrears.whatif.run import WhatIfError, WhatIfResult, run_whatif

__all__ = ["WhatIfError", "WhatIfResult", "run_whatif"]
