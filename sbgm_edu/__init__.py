"""sbgm_edu: the companion package of the book
"Score-Based Generative Models, from Euler's method to sampling".

Small, readable functions, one module per idea; each docstring names the
book's equation label it computes. Import the modules you need, e.g.

    from sbgm_edu.sde import VESDE
    from sbgm_edu.ode import euler
"""

__version__ = "0.1.0"
