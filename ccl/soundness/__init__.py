"""Proof = flight: proven programs flown on the real VVM and scheduler at adversarial inputs.

Above the compiler, the verifier and the packer (it uses all three): ``trial`` flies one
compiled configuration through the real patcher and scheduler and judges the flight against
the proof; ``campaign`` generates programs at scale and counts every disagreement.
"""
